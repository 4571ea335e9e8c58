#!/usr/bin/env bash
# Membrane's main job (offline, until the datapath lands): the seed documents' example policies applied
# to a small cluster, validated, turned into identities and policy maps, and connections traced through them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh libbpf-dev
echo "Building membrane (release)…"
swift build -c release --product membrane >/dev/null
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
