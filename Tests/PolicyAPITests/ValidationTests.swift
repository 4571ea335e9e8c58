import Foundation
import Testing
@testable import PolicyAPI

/// Focused checks of individual validation rules: what is accepted, and how errors are worded and placed.
@Suite struct ValidationTests {
    func firstRule(_ set: ManifestSet, egress: Bool = false) -> PolicyRule? {
        let spec = ciliumPolicies(set).first?.specs.first
        return egress ? spec?.egress?.first : spec?.ingress?.first
    }

    @Test func suggestions() {
        #expect(Suggest.nearest("toPort", in: ["toPorts", "toEndpoints"]) == "toPorts")
        #expect(Suggest.nearest("fromEndpoint", in: ["fromEndpoints", "fromCIDR"]) == "fromEndpoints")
        #expect(Suggest.nearest("completelyDifferent", in: ["toPorts"]) == nil)
        #expect(Suggest.distance(Array("kitten".unicodeScalars), Array("sitting".unicodeScalars)) == 3)
    }

    @Test func portSyntax() {
        #expect(PortSyntax.isServiceName("http"))
        #expect(PortSyntax.isServiceName("http-alt"))
        #expect(PortSyntax.isServiceName("h2c"))
        #expect(!PortSyntax.isServiceName("8080"))
        #expect(!PortSyntax.isServiceName("-http"))
        #expect(!PortSyntax.isServiceName("http-"))
        #expect(!PortSyntax.isServiceName("ht--tp"))
        #expect(!PortSyntax.isServiceName("a-very-long-port-name"))
        #expect(!PortSyntax.isServiceName("HTTP", lowercaseOnly: true))
    }

    @Test func labelSyntax() {
        #expect(LabelSyntax.keyProblem("app") == nil)
        #expect(LabelSyntax.keyProblem("k8s:io.kubernetes.pod.namespace") == nil)
        #expect(LabelSyntax.keyProblem("app.kubernetes.io/name") == nil)
        #expect(LabelSyntax.keyProblem("io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name") == nil)
        #expect(LabelSyntax.keyProblem("reserved:host") == nil)
        #expect(LabelSyntax.keyProblem("cidr:10.0.0.0/8") == nil)
        #expect(LabelSyntax.keyProblem("-app") != nil)
        #expect(LabelSyntax.keyProblem("k8s:") != nil)
        #expect(LabelSyntax.keyProblem("Bad_Prefix!/name") != nil)
        #expect(LabelSyntax.keyProblem(String(repeating: "a", count: 64)) != nil)
        #expect(LabelSyntax.valueProblem("") == nil)
        #expect(LabelSyntax.valueProblem("v1.2_x-y") == nil)
        #expect(LabelSyntax.valueProblem("a b") != nil)
        #expect(LabelSyntax.valueProblem(String(repeating: "a", count: 64)) != nil)
    }

    @Test func fqdnSyntax() {
        #expect(FQDNSyntax.problem("api.example.com", pattern: false) == nil)
        #expect(FQDNSyntax.problem("api.example.com.", pattern: false) == nil)
        #expect(FQDNSyntax.problem("API.Example.COM", pattern: false) == nil)
        #expect(FQDNSyntax.problem("*.example.com", pattern: true) == nil)
        #expect(FQDNSyntax.problem("*", pattern: true) == nil)
        #expect(FQDNSyntax.problem("*.example.com", pattern: false) != nil)
        #expect(FQDNSyntax.problem("a..b", pattern: false) != nil)
        #expect(FQDNSyntax.problem(".a", pattern: false) != nil)
        #expect(FQDNSyntax.problem(String(repeating: "a", count: 256), pattern: false) != nil)
    }

    @Test func portForms() throws {
        let set = decodeCNP("""
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports:
            - port: 80
            - port: "0"
              protocol: UDP
            - protocol: SCTP
            - port: HTTP-Alt
            - port: "8000"
              endPort: 9000
              protocol: TCP
            - port: 443
              endPort: 443
            - port: 53
              endPort: 0
        """)
        #expect(set.errors.isEmpty, "\(describe(set.errors))")
        let ports = try #require(firstRule(set)?.toPorts?.first?.ports)
        #expect(ports == [PortProtocol(port: .number(80)), PortProtocol(port: .any, protocol: .udp),
                          PortProtocol(port: .any, protocol: .sctp), PortProtocol(port: .named("http-alt")),
                          PortProtocol(port: .number(8000), endPort: 9000, protocol: .tcp),
                          PortProtocol(port: .number(443), endPort: 443), PortProtocol(port: .number(53))])
    }

    @Test func fortyPortsAreFine() {
        let ports = (0..<40).map { "    - port: \(1000 + $0)" }.joined(separator: "\n")
        let set = decodeCNP("endpointSelector: {}\ningress:\n- toPorts:\n  - ports:\n\(ports)")
        #expect(set.errors.isEmpty, "\(describe(set.errors))")
    }

    @Test func cidrForms() throws {
        let set = decodeCNP("""
        endpointSelector: {}
        egress:
        - toCIDR: [10.0.0.1/8, 192.168.1.1, "2001:db8::1/32", "::1"]
        - toCIDRSet:
          - cidr: 0.0.0.0/0
            except: [10.0.0.0/8, 0.0.0.0/0]
          - cidrGroupRef: corp-ranges
            except: [10.0.0.0/8]
        """)
        #expect(set.errors.isEmpty, "\(describe(set.errors))")
        let egress = try #require(ciliumPolicies(set).first?.specs.first?.egress)
        #expect(egress[0].cidr?.map(\.description) == ["10.0.0.0/8", "192.168.1.1/32", "2001:db8::/32", "::1/128"])
        #expect(egress[1].cidrSet == [CIDRRule(cidr: IPPrefix("0.0.0.0/0"), except: [IPPrefix("10.0.0.0/8")!, IPPrefix("0.0.0.0/0")!]),
                                      CIDRRule(cidrGroupRef: "corp-ranges", except: [IPPrefix("10.0.0.0/8")!])])
    }

    @Test func entitiesIcmpAndAuthentication() throws {
        let set = decodeCNP("""
        endpointSelector: {}
        ingress:
        - fromEntities: [all, world, world-ipv4, world-ipv6, cluster, host, remote-node, kube-apiserver, init, health, unmanaged, ingress]
          authentication: {mode: required}
        - icmps:
          - fields:
            - {type: 8}
            - {type: EchoRequest, family: IPv4}
            - {type: EchoRequest, family: IPv6}
            - {type: NeighborSolicitation, family: IPv6}
            - {type: "0"}
        """)
        #expect(set.errors.isEmpty, "\(describe(set.errors))")
        let ingress = try #require(ciliumPolicies(set).first?.specs.first?.ingress)
        #expect(ingress[0].entities == Entity.allCases)
        #expect(ingress[0].authentication == .required)
        #expect(ingress[1].icmps == [[ICMPField(type: 8), ICMPField(type: 8), ICMPField(family: .ipv6, type: 128),
                                      ICMPField(family: .ipv6, type: 135), ICMPField(type: 0)]])
    }

    @Test func requiresCombinesWithOtherPeers() throws {
        let set = decodeCNP("""
        endpointSelector: {}
        ingress:
        - fromEndpoints: [{matchLabels: {app: a}}]
          fromRequires: [{matchLabels: {env: prod}}]
        egress:
        - toCIDR: [10.0.0.0/8]
          toRequires: [{matchLabels: {env: prod}}]
          toPorts: [{ports: [{port: 443, protocol: TCP}]}]
        - toFQDNs: [{matchName: example.com}]
          toEndpoints: []
        - toServices:
          - k8sService: {serviceName: db, namespace: prod}
          - k8sServiceSelector: {selector: {matchLabels: {tier: db}}}
          toPorts: [{ports: [{port: 5432}]}]
        """)
        #expect(set.errors.isEmpty, "\(describe(set.errors))")
        let spec = try #require(ciliumPolicies(set).first?.specs.first)
        #expect(spec.ingress?[0].requires == [LabelSelector(matchLabels: ["env": "prod"])])
        #expect(spec.egress?[2].services == [ServiceSelector(k8sService: .init(serviceName: "db", namespace: "prod")),
                                             ServiceSelector(k8sServiceSelector: .init(selector: LabelSelector(matchLabels: ["tier": "db"])))])
    }

    @Test func l7Forms() throws {
        let set = decodeCNP("""
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports: [{port: 80, protocol: TCP}]
            rules:
              http:
              - {}
              - method: "GET|HEAD"
                path: "^/api/v[0-9]+/.*$"
                host: ".*\\\\.example\\\\.com"
                headers: ["X-Debug"]
                headerMatches:
                - {name: X-Token, value: abc, mismatch: REPLACE}
          - ports: [{port: 9092, protocol: TCP}]
            rules:
              kafka:
              - {role: CONSUME, topic: orders.v1_x-y}
              - {apiKey: 3, apiVersion: "2", clientID: my-client}
              - {apiKey: Metadata}
          - ports: [{port: 81, protocol: TCP}]
            rules: {}
          - ports: [{port: 82, protocol: TCP}]
            rules: {http: []}
        egress:
        - toPorts:
          - ports: [{port: 53, protocol: ANY}]
            rules:
              dns: [{matchName: "Example.COM."}, {matchPattern: "*"}]
        """)
        #expect(set.errors.isEmpty, "\(describe(set.errors))")
        let spec = try #require(ciliumPolicies(set).first?.specs.first)
        let tp = try #require(spec.ingress?.first?.toPorts)
        #expect(tp[0].rules == .http([HTTPRule(), HTTPRule(method: "GET|HEAD", path: "^/api/v[0-9]+/.*$", host: ".*\\.example\\.com",
                                                          headers: ["X-Debug"], headerMatches: [HTTPHeaderMatch(name: "X-Token", value: "abc", mismatch: .replace)])]))
        #expect(tp[1].rules == .kafka([KafkaRule(role: "consume", topic: "orders.v1_x-y"),
                                       KafkaRule(apiKey: "3", apiVersion: "2", clientID: "my-client"),
                                       KafkaRule(apiKey: "metadata")]))
        #expect(tp[2].rules == nil && tp[3].rules == nil)
        #expect(spec.egress?.first?.toPorts?.first?.rules == .dns([FQDNSelector(matchName: "Example.COM."), FQDNSelector(matchPattern: "*")]))
    }

    @Test func selectorOnlySpecIsAccepted() {
        let set = decodeCNP("endpointSelector: {matchLabels: {app: a}}\nenableDefaultDeny: {ingress: true}")
        #expect(set.errors.isEmpty, "\(describe(set.errors))")
        #expect(ciliumPolicies(set).first?.specs.first?.enableDefaultDeny == DefaultDenyConfig(ingress: true))
    }

    @Test func matchLabelsScalarsAreStrings() throws {
        let set = decodeCNP("endpointSelector: {matchLabels: {version: 2, enabled: true, empty: \"\", reserved:host: }}")
        #expect(set.errors.isEmpty, "\(describe(set.errors))")
        let sel = try #require(ciliumPolicies(set).first?.specs.first?.endpointSelector)
        #expect(sel.matchLabels == ["version": "2", "enabled": "true", "empty": "", "reserved:host": ""])
    }

    @Test func hostPolicyAllowsDNSOnEgress() {
        let set = decodeCNP("""
        nodeSelector: {}
        egress:
        - toPorts:
          - ports: [{port: 53, protocol: UDP}]
            rules: {dns: [{matchPattern: "*"}]}
        """, kind: "CiliumClusterwideNetworkPolicy")
        #expect(set.errors.isEmpty, "\(describe(set.errors))")
    }

    @Test func errorsCarryLinesAndResource() throws {
        let set = decodeCNP("""
        endpointSelector: {}
        egress:
        - toPorts:
          - ports:
            - port: 8080
              endPort: 80
        """, name: "lines")
        let e = try #require(set.errors.first)
        #expect(set.errors.count == 1)
        #expect(e.path == "spec.egress[0].toPorts[0].ports[0].endPort")
        #expect(e.message == "endPort 80 is less than port 8080")
        #expect(e.line == 11)
        #expect(e.location.line == 1)
        #expect(e.resource == ResourceRef(kind: .ciliumNetworkPolicy, namespace: "default", name: "lines"))
    }

    @Test func typeErrorMessagesSayWhatWasFound() {
        let set = decodeCNP("""
        endpointSelector: []
        ingress:
        - fromEndpoints: {app: a}
          toPorts: "80"
        egress: 5
        description: {a: b}
        """)
        let byPath = Dictionary(set.errors.map { ($0.path, $0.message) }, uniquingKeysWith: { a, _ in a })
        #expect(byPath["spec.endpointSelector"] == "expected a mapping, found a list")
        #expect(byPath["spec.ingress[0].fromEndpoints"] == "expected a list, found a mapping")
        #expect(byPath["spec.ingress[0].toPorts"] == "expected a list, found a string \"80\"")
        #expect(byPath["spec.egress"] == "expected a list, found a number 5")
        #expect(byPath["spec.description"] == "expected a string, found a mapping")
        #expect(set.resources.isEmpty)
    }

    @Test func knpPortsAndDefaults() throws {
        let set = decode("""
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: np}
        spec:
          podSelector: {}
          ingress:
          - ports: [{protocol: UDP}, {port: 53, endPort: 53}]
        """)
        #expect(set.errors.isEmpty, "\(describe(set.errors))")
        let np = try #require(networkPolicies(set).first)
        #expect(np.ref.namespace == "default")
        #expect(np.ingress?.first?.ports == [NetworkPolicyPort(protocol: .udp), NetworkPolicyPort(port: .number(53), endPort: 53)])
        #expect(np.ingress?.first?.peers == nil)
        #expect(np.policyTypes == nil)
    }

    @Test func knpQuotedNumericPortIsRejected() {
        let set = decode("""
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: np}
        spec:
          podSelector: {}
          ingress: [{ports: [{port: "80"}]}]
        """)
        #expect(set.errors.map(\.path) == ["spec.ingress[0].ports[0].port"])
    }

    @Test func missingKindAndNonStringKind() {
        let a = decode("apiVersion: v1\nmetadata: {name: x}\n")
        #expect(a.errors.map(\.path) == ["kind"])
        let b = decode("apiVersion: v1\nkind: [Pod]\nmetadata: {name: x}\n")
        #expect(b.errors.map(\.message) == ["expected a string, found a list"])
    }
}
