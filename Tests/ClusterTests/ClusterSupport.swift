import Foundation
import Testing
@testable import Cluster
@testable import Policy
import PolicyAPI

/// A small cluster: two nodes (node2 also runs the kube-apiserver), a `web` namespace with a client, a server
/// behind a Service, another pod, a hostNetwork pod, and CoreDNS in kube-system.
let clusterYAML = """
apiVersion: v1
kind: Node
metadata: {name: node1, labels: {kubernetes.io/hostname: node1}}
status: {addresses: [{type: InternalIP, address: 10.1.0.1}]}
---
apiVersion: v1
kind: Node
metadata: {name: node2, labels: {kubernetes.io/hostname: node2}}
status: {addresses: [{type: InternalIP, address: 10.1.0.2}]}
---
apiVersion: v1
kind: Node
metadata: {name: node3}
status: {addresses: [{type: InternalIP, address: 10.1.0.3}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: web, labels: {team: frontend}}
---
apiVersion: v1
kind: Namespace
metadata: {name: kube-system}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: web, labels: {app: client, pod-template-hash: abc123}}
spec: {nodeName: node1, serviceAccountName: client-sa, containers: [{name: main, image: x}]}
status: {podIP: 10.0.0.10}
---
apiVersion: v1
kind: Pod
metadata: {name: client-2, namespace: web, labels: {app: client, pod-template-hash: def456}}
spec: {nodeName: node2, serviceAccountName: client-sa, containers: [{name: main, image: x}]}
status: {podIP: 10.0.0.11}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: web, labels: {app: server}}
spec:
  nodeName: node2
  containers:
  - name: main
    image: x
    ports: [{name: http, containerPort: 8080, protocol: TCP}]
status: {podIP: 10.0.0.20}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: web, labels: {app: other}}
spec: {nodeName: node1, containers: [{name: main, image: x}]}
status: {podIP: 10.0.0.30}
---
apiVersion: v1
kind: Pod
metadata: {name: agent, namespace: web, labels: {app: agent}}
spec: {nodeName: node2, hostNetwork: true, containers: [{name: main, image: x}]}
status: {podIP: 10.1.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec: {nodeName: node1, containers: [{name: main, image: x}]}
status: {podIP: 10.0.0.53}
---
apiVersion: v1
kind: Service
metadata: {name: server-svc, namespace: web}
spec:
  selector: {app: server}
  clusterIP: 10.96.0.20
  ports:
  - {name: plain, port: 80, targetPort: 8080, protocol: TCP}
  - {name: named, port: 81, targetPort: http, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system}
spec:
  selector: {k8s-app: kube-dns}
  clusterIP: 10.96.0.10
  ports: [{name: dns, port: 53, protocol: UDP}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: kubernetes, namespace: default}
subsets: [{addresses: [{ip: 10.1.0.2}], ports: [{name: https, port: 6443}]}]
"""

let policyYAML = """
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: server-ingress, namespace: web}
spec:
  endpointSelector: {matchLabels: {app: server}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-egress, namespace: web}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints:
    - matchLabels: {"k8s:io.kubernetes.pod.namespace": kube-system, k8s-app: kube-dns}
    toPorts:
    - ports: [{port: "53", protocol: UDP}]
      rules:
        dns: [{matchPattern: "*.cilium.io"}]
  - toFQDNs: [{matchName: api.cilium.io}]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
  - toEndpoints: [{matchLabels: {app: server}}]
  - toCIDR: [203.0.113.0/24]
  - toCIDRSet: [{cidr: 203.0.0.0/16}]
"""

func decodeOK(_ yaml: String, file: String = "test.yaml") -> ManifestSet {
    let set = ManifestDecoder.decode(yaml: yaml, file: file)
    #expect(set.errors.isEmpty, "\(set.errors.map(\.description))")
    return set
}

func model(_ yaml: String = clusterYAML + "\n---\n" + policyYAML, settings: EngineSettings = EngineSettings()) -> ClusterModel {
    ClusterModel(manifests: decodeOK(yaml), settings: settings)
}

func pod(_ m: ClusterModel, _ ns: String, _ name: String) -> EndpointInfo {
    m.endpoint(namespace: ns, pod: name)!
}
