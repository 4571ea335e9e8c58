import Foundation
import HubbleAPI
import SwiftProtobuf
import Testing

/// The request bytes the real hubble CLI sends (reference §2.1), decoded with our generated
/// types, and our own encoding of the same requests, which must be byte-identical.
@Suite("Golden wire bytes")
struct WireGoldenTests {
    static func bytes(_ hex: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }

    static func decode(_ hex: String) throws -> Observer_GetFlowsRequest {
        try Observer_GetFlowsRequest(serializedBytes: bytes(hex))
    }

    static func hex<M: SwiftProtobuf.Message>(_ message: M) throws -> String {
        let data: [UInt8] = try message.serializedBytes()
        return data.map { String(format: "%02x", $0) }.joined()
    }

    @Test func lastHundred() throws {
        let request = try Self.decode("0864")
        #expect(request.number == 100)
        #expect(!request.follow && !request.first && request.whitelist.isEmpty)
    }

    @Test func verdictDropped() throws {
        let request = try Self.decode("081432032a0102")
        #expect(request.number == 20)
        #expect(request.whitelist.count == 1)
        #expect(request.whitelist[0].verdict == [.dropped])
        #expect(request.blacklist.isEmpty)

        var mine = Observer_GetFlowsRequest()
        mine.number = 20
        var filter = Flow_FlowFilter()
        filter.verdict = [.dropped]
        mine.whitelist = [filter]
        #expect(try Self.hex(mine) == "081432032a0102")
    }

    @Test func notForwarded() throws {
        let request = try Self.decode("08142a032a0101")
        #expect(request.blacklist.map(\.verdict) == [[.forwarded]])
        #expect(request.whitelist.isEmpty)
    }

    @Test func namespaceProd() throws {
        let request = try Self.decode("08143207120570726f642f3207220570726f642f")
        #expect(request.whitelist.count == 2)
        #expect(request.whitelist[0].sourcePod == ["prod/"])
        #expect(request.whitelist[1].destinationPod == ["prod/"])
    }

    @Test func identityAndPort() throws {
        let request = try Self.decode("0814320a7204383038309a010102")
        #expect(request.whitelist.count == 1)
        #expect(request.whitelist[0].destinationPort == ["8080"])
        #expect(request.whitelist[0].sourceIdentity == [2])

        var filter = Flow_FlowFilter()
        filter.destinationPort = ["8080"]
        filter.sourceIdentity = [2]
        var mine = Observer_GetFlowsRequest()
        mine.number = 20
        mine.whitelist = [filter]
        #expect(try Self.hex(mine) == "0814320a7204383038309a010102")
    }

    @Test func policyVerdictType() throws {
        let request = try Self.decode("0814320432020805")
        #expect(request.whitelist.map { $0.eventType.map(\.type) } == [[5]])
        #expect(request.whitelist[0].eventType[0].matchSubType == false)
    }

    @Test func firstThree() throws {
        let request = try Self.decode("08034801")
        #expect(request.number == 3)
        #expect(request.first)
    }

    @Test func unpackedVerdictAlsoDecodes() throws {
        // Same filter with the repeated enum sent unpacked (tag 5, varint): decoders must accept both.
        let request = try Self.decode("08143202" + "2802")
        #expect(request.whitelist[0].verdict == [.dropped])
    }

    @Test func unknownFieldsAreIgnored() throws {
        // number=20 followed by an unknown field 77 (varint 1).
        let request = try Self.decode("0814e80401")
        #expect(request.number == 20)
    }

    @Test func healthCheckRequest() throws {
        let request = try Grpc_Health_V1_HealthCheckRequest(
            serializedBytes: Self.bytes("0a16") + Array("hubble.server.Observer".utf8))
        #expect(request.service == "hubble.server.Observer")
        var response = Grpc_Health_V1_HealthCheckResponse()
        response.status = .serving
        #expect(try Self.hex(response) == "0801")
    }

    @Test func emptyRequestsAreEmpty() throws {
        #expect(try Self.hex(Observer_ServerStatusRequest()) == "")
        #expect(try Self.hex(Observer_GetNodesRequest()) == "")
        #expect(try Self.hex(Observer_GetNamespacesRequest()) == "")
    }

    @Test func responseNodeNameAndTimeUseHighFieldNumbers() throws {
        var response = Observer_GetFlowsResponse()
        response.nodeName = "n"
        response.time = Google_Protobuf_Timestamp(seconds: 1, nanos: 0)
        // node_name = 1000 (LEN) → tag 0x1f42 varint "c23e"; time = 1001 (LEN) → "ca3e".
        #expect(try Self.hex(response) == "c23e016e" + "ca3e020801")
    }

    @Test func multiByteFlowTags() throws {
        var flow = Flow_Flow()
        flow.summary = "x"
        // Summary = 100000 (LEN): tag (100000 << 3 | 2) = 800002 → varint 82 ea 30.
        #expect(try Self.hex(flow) == "82ea3001" + "78")
        var policy = Flow_Policy()
        policy.revision = 7
        flow = Flow_Flow()
        flow.egressDeniedBy = [policy]
        // egress_denied_by = 21004: tag 168034 → e2 a0 0a.
        #expect(try Self.hex(flow) == "e2a00a02" + "2007")
    }
}
