#!/usr/bin/env bash
# The datapath benchmark (membrane-bench datapath, see Sources/membrane-bench/DatapathBench.swift): installs
# what it needs from Debian when missing, then runs it. Needs root (network namespaces, tc, BPF, iptables).
# Arguments go to the benchmark, e.g.: scripts/bench.sh --rounds 8 --no-fleet
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "error: the datapath benchmark needs root (network namespaces, tc, BPF, iptables)" >&2
  exit 1
fi
# libbpf for the loader; iproute2 for namespaces, veths, tc and ss; python3 for the enforcement probes;
# iperf3 (throughput), sockperf (TCP_RR), wrk + nginx-light (TCP_CRR), iptables (configuration d).
source scripts/install-deps.sh libbpf-dev iproute2 python3 iperf3 sockperf wrk nginx-light iptables
swift build -c release --product membrane-bench
exec swift run -c release --skip-build membrane-bench datapath "$@"
