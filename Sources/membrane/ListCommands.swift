import AgentAPI
import ArgumentParser
import Cluster
import Policy
import PolicyAPI

struct IdentityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identity", abstract: "Security identities.", subcommands: [List.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List identities, like `cilium-dbg identity list`.")
        @OptionGroup var manifests: ManifestOptions
        @OptionGroup var agent: AgentOptions
        @OptionGroup var out: OutputOptions

        struct Row: Encodable { var id: NumericIdentity; var scope: String; var labels: [String] }

        func run() throws {
            let rows: [Row]
            if manifests.files.isEmpty {
                // Live: the agent's identities.
                let ids: [IdentityJSON] = try withAgent { try agent.client.get("/v1/identities") }
                rows = ids.map { Row(id: $0.id, scope: Identity(id: $0.id, labels: LabelSet()).scope, labels: $0.labels) }
            } else {
                let cluster = try loadCluster(manifests)
                rows = cluster.engine.selectorCache.allIdentities.map { Row(id: $0.id, scope: $0.scope, labels: $0.labels.labels.map(\.description)) }
            }
            if out.output == .json { try printJSON(rows); return }
            var lines: [[String]] = []
            for r in rows { for (i, l) in labelsText(r.labels).enumerated() { lines.append([i == 0 ? String(r.id) : "", l]) } }
            print(table(["ID", "LABELS"], lines))
        }
    }
}

struct EndpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "endpoint", abstract: "Endpoints (pods and host endpoints).",
        subcommands: [List.self, Create.self, Get.self, Delete.self, Labels.self, Exec.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List endpoints with their policy enforcement, like `cilium-dbg endpoint list`.")
        @OptionGroup var manifests: ManifestOptions
        @OptionGroup var agent: SettingsOptions
        @OptionGroup var live: AgentOptions
        @OptionGroup var out: OutputOptions

        struct Row: Encodable {
            var id: UInt16; var name: String; var node: String; var identity: NumericIdentity; var labels: [String]
            var ipv4: String?; var ipv6: String?; var ingressEnforcement: String; var egressEnforcement: String
            var policies: [PolicyName]; var status: String
        }

        func run() throws {
            if manifests.files.isEmpty {
                // Live: the agent's endpoints.
                let eps: [EndpointJSON] = try withAgent { try live.client.get("/v1/endpoints") }
                if out.output == .json { try printJSON(eps) } else { print(endpointTable(eps)) }
                return
            }
            let cluster = try loadCluster(manifests, settings: agent.settings())
            let engine = cluster.engine
            let rows = cluster.sortedEndpoints.map { e in
                Row(id: e.id, name: e.displayName, node: e.nodeName, identity: e.identity.id,
                    labels: e.identity.labels.labels.map(\.description),
                    ipv4: e.addresses.first { $0.isIPv4 }?.description, ipv6: e.addresses.first { !$0.isIPv4 }?.description,
                    ingressEnforcement: engine.posture(e.id, .ingress)?.enforced == true ? "Enabled" : "Disabled",
                    egressEnforcement: engine.posture(e.id, .egress)?.enforced == true ? "Enabled" : "Disabled",
                    policies: engine.selectingPolicies(e.id).map(PolicyName.init), status: "ready")
            }
            if out.output == .json { try printJSON(rows); return }
            var lines: [[String]] = []
            for r in rows {
                for (i, l) in labelsText(r.labels).enumerated() {
                    lines.append(i == 0 ? [String(r.id), r.name, r.ingressEnforcement, r.egressEnforcement, String(r.identity), l,
                                           r.ipv4 ?? "", r.status]
                                        : ["", "", "", "", "", l, "", ""])
                }
            }
            print(table(["ENDPOINT", "NAME", "POLICY (ingress) ENFORCEMENT", "POLICY (egress) ENFORCEMENT", "IDENTITY",
                         "LABELS (source:key[=value])", "IPv4", "STATUS"], lines))
        }
    }
}
