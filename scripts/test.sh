#!/usr/bin/env bash
# Membrane's whole test suite: unit, property, scenario, CLI, datapath and agent tests. The privileged
# suites (network namespaces, eBPF) run when root or when CI is set, and say so when they skip.
set -euo pipefail
cd "$(dirname "$0")/.."
# libbpf, bpftool and iproute2 for the eBPF datapath; ping and python3 for the traffic in privileged tests.
source scripts/install-deps.sh libbpf-dev bpftool iproute2 iputils-ping python3 python3-venv curl
# An outside gRPC client for the Hubble API check (Python grpcio and protoc from PyPI), in a venv under .build.
if [ ! -x .build/interop-venv/bin/python3 ] || ! .build/interop-venv/bin/python3 -c 'import grpc, grpc_tools' 2>/dev/null; then
    python3 -m venv .build/interop-venv
    .build/interop-venv/bin/pip install --quiet --disable-pip-version-check grpcio grpcio-tools
fi
swift build --build-tests
# The gRPC suite runs on its own: its client and server need Swift's cooperative threads (two on a 2-core
# machine), which the privileged suites' blocking waits would otherwise hold, and its deadlines would expire.
swift test --skip-build --skip HubbleServerTests 2>&1 | tee /tmp/membrane-test.log
swift test --skip-build --filter HubbleServerTests 2>&1 | tee -a /tmp/membrane-test.log
