import MembraneTestSupport
import Testing
@testable import Policy
import PolicyAPI

@Suite struct LabelsTests {
    @Test(arguments: [
        ("k8s:app=x", "k8s", "app", "x"),
        ("reserved:host", "reserved", "host", ""),
        ("app=x", "k8s", "app", "x"),
        ("app", "k8s", "app", ""),
        ("any:io.kubernetes.pod.namespace=default", "any", "io.kubernetes.pod.namespace", "default"),
        ("cidr:10.0.0.0/8", "cidr", "10.0.0.0/8", ""),
        ("fqdn:*.cilium.io", "fqdn", "*.cilium.io", ""),
        // A colon after '=' belongs to the value, not to a source.
        ("app=a:b", "k8s", "app", "a:b"),
        // A colon after '/' belongs to the key (no source can contain '/').
        ("example.com/app:x=y", "k8s", "example.com/app:x", "y"),
        ("k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=web", "k8s",
         "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name", "web"),
    ])
    func parse(text: String, source: String, key: String, value: String) {
        let l = Label(parsing: text)
        #expect(l.source == source)
        #expect(l.key == key)
        #expect(l.value == value)
    }

    @Test func parseWithDefaultSource() {
        #expect(Label(parsing: "host", defaultSource: "reserved") == Label(source: "reserved", key: "host"))
        #expect(Label(parsing: "k8s:app=x", defaultSource: "reserved").source == "k8s")
    }

    @Test(arguments: [
        (Label(source: "k8s", key: "app", value: "x"), "k8s:app=x"),
        (Label(source: "reserved", key: "host"), "reserved:host"),
        (Label(source: "cidr", key: "10.0.0.0/8"), "cidr:10.0.0.0/8"),
        (ReservedIdentity.kubeAPIServer.label, "reserved:kube-apiserver"),
    ])
    func printing(label: Label, text: String) {
        #expect(label.description == text)
        #expect(Label(parsing: text) == label)
    }

    @Test func roundTripOverVocabulary() {
        var rng = SplitMix64(seed: 7)
        let sources = ["k8s", "reserved", "any", "cidr", "fqdn", "unspec"]
        let keys = ["app", "tier", "io.kubernetes.pod.namespace", "app.kubernetes.io/name", "10.0.0.0/8", "x-y_z"]
        let values = ["", "a", "b-c", "1.2", "x:y"]
        for _ in 0..<300 {
            let l = Label(source: rng.pick(sources), key: rng.pick(keys), value: rng.pick(values))
            #expect(Label(parsing: l.description) == l, "\(l)")
        }
    }

    @Test func labelSetIsCanonical() {
        let a = LabelSet([k8s("b", "1"), reservedLabel("host"), k8s("a", "2"), Label(source: "any", key: "a", value: "0")])
        let b = LabelSet([Label(source: "any", key: "a", value: "0"), k8s("a", "2"), reservedLabel("host"), k8s("b", "1")])
        #expect(a == b)
        #expect(a.hashValue == b.hashValue)
        #expect(a.labels.map(\.description) == ["any:a=0", "k8s:a=2", "k8s:b=1", "reserved:host"])
        #expect(a.description == "any:a=0,k8s:a=2,k8s:b=1,reserved:host")
        #expect(a.labels == a.labels.sorted())
    }

    @Test func labelSetDedupLastWins() {
        let s = LabelSet([k8s("app", "x"), k8s("app", "y"), k8s("app", "x")])
        #expect(s.count == 1)
        #expect(s.labels == [k8s("app", "x")])
        let t = LabelSet([k8s("app", "x"), k8s("app", "y")])
        #expect(t.labels == [k8s("app", "y")])
        // Same key, different sources: both kept.
        #expect(LabelSet([k8s("app", "x"), Label(source: "unspec", key: "app", value: "x")]).count == 2)
    }

    @Test func labelSetQueries() {
        let s = LabelSet([k8s("app", "x"), reservedLabel("host")])
        #expect(s.contains(source: "k8s", key: "app"))
        #expect(!s.contains(source: "reserved", key: "app"))
        #expect(s.has(k8s("app", "x")))
        #expect(!s.has(k8s("app", "y")))
        #expect(Array(s.values(forKey: "host")) == [reservedLabel("host")])
        #expect(LabelSet().isEmpty)
    }

    // MARK: Identity-relevant label filter (Cilium pkg/labelsfilter defaults)

    @Test(arguments: [
        ("app", true),
        ("io.kubernetes.pod.namespace", true),
        ("io.cilium.k8s.namespace.labels.team", true),
        ("io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name", true),
        ("app.kubernetes.io/name", true),
        ("app.kubernetes.io/instance", true),
        ("statefulset.kubernetes.io/pod-name", true),
        ("io.cilium.k8s.policy.serviceaccount", true),
        ("io.cilium.k8s.policy.cluster", true),
        ("pod-template-hash", false),
        ("pod-template-generation", false),
        ("controller-revision-hash", false),
        ("io.kubernetes.pod.name", false),
        ("io.kubernetes.container.name", false),
        ("kubernetes.io/hostname", false),
        ("kubernetes.io/metadata.name", false),
        ("k8s.io/foo", false),
        ("beta.kubernetes.io/arch", false),
        ("failure-domain.beta.kubernetes.io/zone", false),
        ("annotation.foo", false),
        ("etcd_node", false),
    ])
    func ciliumFilter(key: String, kept: Bool) {
        #expect(LabelFilter.cilium.isRelevant(k8s(key, "v")) == kept)
    }

    /// Cilium keeps a label iff the longest include match is longer than the shortest exclude match
    /// (pkg/labelsfilter filterLabels). `.*beta\.kubernetes\.io` matches 48 characters of this key, the
    /// include `io\.cilium\.k8s\.namespace\.labels` only 30, so Cilium drops it.
    @Test func betaNamespaceLabelIsExcludedDespiteNamespaceLabelsInclude() {
        #expect(!LabelFilter.cilium.isRelevant(k8s("io.cilium.k8s.namespace.labels.beta.kubernetes.io/arch", "amd64")))
        #expect(!LabelFilter.cilium.isRelevant(k8s("app.kubernetes.io.beta.kubernetes.io/x", "y")))
    }

    @Test func reservedLabelsAlwaysKept() {
        #expect(LabelFilter.cilium.isRelevant(Label(source: "reserved", key: "io.kubernetes.whatever")))
        #expect(LabelFilter.cilium.isRelevant(reservedLabel("host")))
    }

    @Test func filterSet() {
        let raw = LabelSet([k8s("app", "web"), k8s("pod-template-hash", "abc"), k8s(WellKnownLabel.podNamespace, "default"),
                            k8s("io.kubernetes.pod.name", "web-1"), k8s("statefulset.kubernetes.io/pod-name", "web-0")])
        #expect(LabelFilter.cilium.filter(raw) == LabelSet([k8s("app", "web"), k8s(WellKnownLabel.podNamespace, "default"),
                                                            k8s("statefulset.kubernetes.io/pod-name", "web-0")]))
    }
}
