import Policy
import PolicyAPI

/// The labels Cilium derives for a workload, shared by the manifest model and the agent.
public enum WorkloadLabels {
    /// The pod's labels, its namespace, the namespace's labels (with `kubernetes.io/metadata.name`, which
    /// Kubernetes sets), its service account and the cluster name, before the identity-relevant filter.
    public static func of(namespace: String, labels: [String: String], namespaceLabels: [String: String],
                          serviceAccount: String, clusterName: String) -> LabelSet {
        var out = labels.map { Label(source: LabelSource.k8s, key: $0.key, value: $0.value) }
        out.append(Label(source: LabelSource.k8s, key: WellKnownLabel.podNamespace, value: namespace))
        var nsLabels = namespaceLabels
        nsLabels["kubernetes.io/metadata.name"] = namespace
        for (k, v) in nsLabels {
            out.append(Label(source: LabelSource.k8s, key: WellKnownLabel.namespaceLabelsPrefix + k, value: v))
        }
        out.append(Label(source: LabelSource.k8s, key: WellKnownLabel.serviceAccount, value: serviceAccount))
        out.append(Label(source: LabelSource.k8s, key: WellKnownLabel.cluster, value: clusterName))
        return LabelSet(out)
    }
}
