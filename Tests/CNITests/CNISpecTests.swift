@testable import CNI
import Foundation
import Testing

/// The plugin's reading of the CNI specification, without root or an agent.
struct CNISpecTests {
    @Test func argsAreKeyValuePairsSeparatedBySemicolons() throws {
        let args = try CNIEnvironment.parseArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web-1;;K8S_POD_UID=a=b")
        #expect(args == ["IgnoreUnknown": "1", "K8S_POD_NAMESPACE": "prod", "K8S_POD_NAME": "web-1", "K8S_POD_UID": "a=b"])
        #expect(try CNIEnvironment.parseArgs("") == [:])
        #expect(throws: CNIError.self) { try CNIEnvironment.parseArgs("K8S_POD_NAME") }
        #expect(throws: CNIError.self) { try CNIEnvironment.parseArgs("=x") }
    }

    @Test(arguments: [
        (["CNI_COMMAND": "ADD", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0"], "CNI_CONTAINERID"),
        (["CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc", "CNI_IFNAME": "eth0"], "CNI_NETNS"),
        (["CNI_COMMAND": "CHECK", "CNI_CONTAINERID": "abc", "CNI_NETNS": "/run/netns/x"], "CNI_IFNAME"),
        (["CNI_COMMAND": "DEL", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0"], "CNI_CONTAINERID"),
        ([:], "CNI_COMMAND"),
        (["CNI_COMMAND": "ATTACH"], "unknown CNI_COMMAND"),
        (["CNI_COMMAND": "ADD", "CNI_CONTAINERID": "-abc", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0"], "invalid CNI_CONTAINERID"),
        (["CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "averyveryverylongname"], "invalid CNI_IFNAME"),
        (["CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc", "CNI_NETNS": "x", "CNI_IFNAME": "eth0"], "absolute path"),
    ])
    func invalidEnvironmentIsCode4(env: [String: String], mentions: String) {
        do {
            _ = try CNIEnvironment(env)
            Issue.record("accepted \(env)")
        } catch {
            #expect(error.code == 4)
            #expect(error.msg.contains(mentions), "\(error.msg)")
        }
    }

    @Test func delNeedsNoNamespaceAndVersionNothing() throws {
        let del = try CNIEnvironment(["CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin:/usr/lib/cni"])
        #expect(del.netns == nil && del.path == ["/opt/cni/bin", "/usr/lib/cni"])
        #expect(try CNIEnvironment(["CNI_COMMAND": "VERSION"]).command == .version)
        #expect(try CNIEnvironment(["CNI_COMMAND": "STATUS"]).command == .status)
    }

    @Test func configurationKeysAndLabels() throws {
        let c = try NetworkConfig(Data("""
            {"cniVersion": "1.0.0", "name": "mb", "type": "membrane-cni", "socket": "/tmp/s.sock", "unknownKey": [1, 2],
             "labels": {"team": "a", "app": "x"}, "args": {"cni": {"labels": [{"key": "app", "value": "web"}]}},
             "prevResult": {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/32"}]},
             "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]}
            """.utf8))
        #expect(c.cniVersion == "1.0.0" && c.name == "mb" && c.type == "membrane-cni" && c.socket == "/tmp/s.sock")
        #expect(c.labels == ["team": "a", "app": "web"], "args.cni.labels win over labels")
        #expect(c.previousAddresses == ["10.0.0.1/32"])
        #expect(c.validAttachments?.first?.containerID == "c1")
        #expect(try NetworkConfig(Data(#"{"name": "mb", "type": "membrane-cni"}"#.utf8)).cniVersion == "0.1.0")
    }

    @Test(arguments: [
        ("not json", 6), ("[1]", 6), (#"{"cniVersion": "1.0.0", "type": "t"}"#, 7), (#"{"cniVersion": "1.0.0", "name": "n"}"#, 7),
        (#"{"cniVersion": 1, "name": "n", "type": "t"}"#, 7), (#"{"cniVersion": "1.0.0", "name": "n", "type": "t", "labels": ["a"]}"#, 7),
        (#"{"cniVersion": "1.0.0", "name": "n", "type": "t", "args": {"cni": {"labels": [{"key": "a"}]}}}"#, 7),
    ])
    func badConfigurations(text: String, code: Int) {
        do {
            _ = try NetworkConfig(Data(text.utf8))
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.code == code, "\(text): \(error)")
        }
    }

    @Test func versionsCompareNumerically() {
        #expect(CNIVersion.compare("0.4.0", "1.0.0") < 0)
        #expect(CNIVersion.compare("1.1.0", "1.0.0") > 0)
        #expect(CNIVersion.compare("0.10.0", "0.4.0") > 0)
        #expect(CNIVersion.atLeast("1.0.0", "0.4.0") && !CNIVersion.atLeast("0.3.1", "0.4.0"))
    }

    @Test func resultFormatFollowsTheVersion() throws {
        let r = CNIResult(interfaces: [.init(name: "mbh1"), .init(name: "eth0", mac: "aa:bb:cc:dd:ee:ff", sandbox: "/run/netns/x")],
                          ips: [.init(address: "10.1.0.2/32", gateway: "169.254.1.1", interface: 1)],
                          routes: [.init(dst: "0.0.0.0/0", gw: "169.254.1.1")])
        let new = r.json(cniVersion: "1.0.0")
        let ip = try #require((new["ips"] as? [[String: Any]])?.first)
        #expect(ip["version"] == nil && ip["address"] as? String == "10.1.0.2/32" && ip["interface"] as? Int == 1)
        #expect((new["interfaces"] as? [[String: Any]])?[1]["sandbox"] as? String == "/run/netns/x")
        #expect(new["dns"] is [String: Any])
        let old = r.json(cniVersion: "0.3.1")
        #expect((old["ips"] as? [[String: Any]])?.first?["version"] as? String == "4")
        #expect(old["cniVersion"] as? String == "0.3.1")
    }

    @Test func workloadNamesComeFromTheArgsOrTheContainerID() throws {
        let config = try NetworkConfig(Data(#"{"cniVersion": "1.0.0", "name": "n", "type": "t"}"#.utf8))
        let k8s = try CNIEnvironment(["CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc", "CNI_NETNS": "/x", "CNI_IFNAME": "eth0",
                                      "CNI_ARGS": "K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web-1"])
        #expect(CNIPlugin.workload(k8s, config) == ("prod", "web-1"))
        let bare = try CNIEnvironment(["CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ABCDEF_0123456789", "CNI_NETNS": "/x", "CNI_IFNAME": "eth0"])
        #expect(CNIPlugin.workload(bare, config) == ("default", "cni-abcdef-01234"))
    }
}
