import GRPCCore
import GRPCNIOTransportHTTP2Posix
import GRPCProtobuf
import HubbleAPI
import SwiftProtobuf

/// A GetFlows client that receives every response as bytes and checks its top-level field tags without
/// building a `Flow` — the server's export rate without the Swift client's decoding cost.
enum WireClient {
    struct Counts: Sendable { var flows = 0, bytes = 0 }

    /// Counts the responses carrying a flow (field 1) and all bytes received.
    static func getFlows(socket: String, _ request: Observer_GetFlowsRequest) async throws -> Counts {
        let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: socket), transportSecurity: .plaintext)
        return try await withGRPCClient(transport: transport) { client in
            try await client.serverStreaming(
                request: ClientRequest(message: request),
                descriptor: MethodDescriptor(fullyQualifiedService: "observer.Observer", method: "GetFlows"),
                serializer: ProtobufSerializer<Observer_GetFlowsRequest>(), deserializer: TagDeserializer(),
                options: .defaults
            ) { response in
                var c = Counts()
                for try await m in response.messages {
                    c.bytes += m.size
                    if m.isFlow { c.flows += 1 }
                }
                return c
            }
        }
    }

    struct Message: Sendable { var size: Int; var isFlow: Bool }

    /// Reads the first tag (the oneof member) and the message size.
    struct TagDeserializer: MessageDeserializer {
        func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> Message {
            bytes.withUnsafeBytes { b in Message(size: b.count, isFlow: b.first == 0x0a) }
        }
    }
}
