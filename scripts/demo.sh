#!/usr/bin/env bash
# Membrane's main job: the seed documents' example policies applied to a small cluster — validated, turned
# into identities and policy maps, connections traced through them (offline) — and then enforced live by the
# agent in eBPF on real endpoints, with the flows shown as `hubble observe` shows them (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh libbpf-dev bpftool iproute2 python3 curl
echo "Building membrane and membrane-agent (release)…"
swift build -c release --product membrane >/dev/null
swift build -c release --product membrane-agent >/dev/null
M=.build/release/membrane
C=examples/seed-demo/cluster.yaml
P=examples/seed-demo/policies
W=examples/seed-demo/clusterwide

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@" || true; }
note() { printf '\n\033[36m# %s\033[0m\n' "$*"; }

note "Validation: the seed examples are valid; a broken file gets every error with its place."
step $M policy validate -f $C $P $W
step $M policy validate -f examples/invalid

note "Identities and endpoints derived from the manifests (namespaced seed examples applied)."
step $M identity list -f $C $P
step $M endpoint list -f $C $P
step $M policy map -f $C $P --endpoint production/database

note "allow-frontend-to-backend: frontend reaches backend on 8080; api-consumer does not (default deny)."
step $M policy trace -f $C $P --from production/frontend --to production/backend --port 8080
step $M policy trace -f $C $P --from production/api-consumer --to production/backend --port 8080 -o json
note "api-http-filter: GET /api/... passes the L7 rules, DELETE does not."
step $M policy trace -f $C $P --from production/api-consumer --to production/api-server --port 80 --http-method GET --http-path /api/v1/items
step $M policy trace -f $C $P --from production/api-consumer --to production/api-server --port 80 --http-method DELETE --http-path /api/v1/items
note "deny-dev-to-prod-db: the cluster may reach the database on 5432; the development namespace is denied (deny wins)."
step $M policy trace -f $C $P --from production/backend --to production/database --port 5432
step $M policy trace -f $C $P --from development/dev-shell --to production/database --port 5432
note "kafka-topic-control: producers may produce to 'payments' only."
step $M policy trace -f $C $P --from messaging/payments --to messaging/broker --port 9092 --kafka-api-key produce --kafka-topic payments
step $M policy trace -f $C $P --from messaging/payments --to messaging/broker --port 9092 --kafka-api-key produce --kafka-topic notifications
note "allow-s3-egress: DNS goes through the DNS proxy; an address it resolved for *.amazonaws.com is reachable on 443."
step $M policy trace -f $C $P --from data-pipeline/uploader --to 10.96.0.10 --port 53 --protocol UDP --dns-query s3.amazonaws.com
step $M policy trace -f $C $P --from data-pipeline/uploader --to 52.216.8.1 --port 443 --dns s3.amazonaws.com=52.216.8.1
step $M policy trace -f $C $P --from data-pipeline/uploader --to 52.216.8.2 --port 443

note "Now add the clusterwide seed policies: baseline-deny-world-egress, allow-kube-apiserver, intercept-all-dns."
note "Their egress rules select every pod, so every pod is now in egress default deny, and world egress is denied outright."
step $M policy trace -f $C $P $W --from production/frontend --to production/backend --port 8080
step $M policy trace -f $C $P $W --from data-pipeline/uploader --to 52.216.8.1 --port 443 --dns s3.amazonaws.com=52.216.8.1
step $M policy trace -f $C $P $W --from production/frontend --to 10.1.0.2 --port 443
step $M policy trace -f $C $P $W --from production/frontend --to 10.96.0.10 --port 53 --protocol UDP --dns-query example.org

# ---------------------------------------------------------------------------------------------------------
# Live: the agent enforces the namespaced seed policies on real endpoints (network namespaces), in eBPF.
if [ "$(id -u)" != 0 ]; then
  note "The live part (agent, endpoints, eBPF, flows) needs root: run this script as root to see it."
  exit 0
fi
T=$(mktemp -d /tmp/membrane-demo.XXXXXX)
export MEMBRANE_SOCKET=$T/membrane.sock
HUBBLE=unix://$T/hubble.sock
BPF_ROOT=/sys/fs/bpf/membrane-demo
mkdir -p $T/manifests && cp $C $P/*.yaml $T/manifests/
cleanup() {
  for id in $($M endpoint list -o json 2>/dev/null | python3 -c 'import json,sys; print(" ".join(str(e["id"]) for e in json.load(sys.stdin)))' 2>/dev/null); do
    $M endpoint delete "$id" >/dev/null 2>&1 || true
  done
  [ -n "${AGENT:-}" ] && kill "$AGENT" 2>/dev/null && wait "$AGENT" 2>/dev/null || true
  rm -rf "$BPF_ROOT" "$T"
}
trap cleanup EXIT
note "Start membrane-agent, watching a manifests directory with the cluster (namespaces, pods) and the seed policies."
.build/release/membrane-agent --socket $MEMBRANE_SOCKET --state-dir $T/state --bpf-root $BPF_ROOT \
  --manifests $T/manifests --pod-cidr 10.210.0.0/24 --hubble-socket $T/hubble.sock \
  --hubble-listen-address 127.0.0.1:4244 --prometheus-serve-addr 127.0.0.1:9962 2>$T/agent.log &
AGENT=$!
for _ in $(seq 100); do $M status >/dev/null 2>&1 && break; sleep 0.1; done
step $M status

note "Endpoints: network namespaces wired to the host; labels come from the Pod manifests."
for ep in production/frontend production/backend production/api-consumer production/database development/dev-shell; do
  $M endpoint create --namespace ${ep%/*} --name ${ep#*/} >/dev/null
done
step $M endpoint list
ip_of() { $M endpoint get "$1" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["ipv4"])'; }
BACKEND=$(ip_of production/backend); DB=$(ip_of production/database)
$M endpoint exec production/backend -- python3 -m http.server 8080 --bind $BACKEND >/dev/null 2>&1 &
$M endpoint exec production/database -- python3 -m http.server 5432 --bind $DB >/dev/null 2>&1 &
for port in "$BACKEND/8080" "$DB/5432"; do   # the host may always connect (allow-localhost): wait for the servers
  for _ in $(seq 50); do timeout 1 bash -c "exec 3<>/dev/tcp/$port" 2>/dev/null && break; sleep 0.2; done
done
probe() {  # probe FROM IP PORT: a real TCP connect from inside the endpoint
  if $M endpoint exec "$1" -- timeout 1 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null; then r="connected"; else r="blocked"; fi
  printf '  %-26s -> %s:%s  %s\n' "$1" "$2" "$3" "$r"
}
note "Real connections (allowed connect; denied time out): frontend→backend is allowed, api-consumer→backend is not,"
note "the cluster reaches the database, development is denied by deny-dev-access (deny wins)."
probe production/frontend $BACKEND 8080
probe production/api-consumer $BACKEND 8080
probe production/backend $DB 5432
probe development/dev-shell $DB 5432
sleep 0.3
note "The flows between endpoints (the host's readiness probes left out with --not), as 'hubble observe' prints them, with the policies that decided each verdict."
step $M observe --server $HUBBLE --last 30 --type policy-verdict --not --from-identity host --print-policy-names
note "Drops only, as JSON (the same JSON as 'hubble observe -o json'); the real hubble CLI works too:"
note "  hubble observe --server $HUBBLE --verdict DROPPED"
step bash -c "$M observe --server $HUBBLE --verdict DROPPED --type drop --last 1 -o json"
note "Kernel map for the backend, read back from the pinned map; Prometheus metrics with Cilium's names."
step $M bpf policy get production/backend
step bash -c "curl -s http://127.0.0.1:9962/metrics | grep -E '^(cilium_drop_count_total|cilium_forward_count_total|cilium_policy_change_total|hubble_flows_processed_total)'"
