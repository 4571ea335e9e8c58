#!/usr/bin/env bash
# Installs what Membrane needs on a fresh Debian 12 machine. Idempotent; runs as root (or via sudo).
# Arguments are Debian packages to install when missing; the Swift toolchain must already be there.
set -euo pipefail
need_apt=()
for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg"); done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi
if ! command -v swift >/dev/null 2>&1; then
  for d in /opt/swift/usr/bin /usr/share/swift/usr/bin; do [ -x "$d/swift" ] && export PATH="$d:$PATH"; done
fi
command -v swift >/dev/null 2>&1 || { echo "error: the Swift 6 toolchain is required (swift not found on PATH)" >&2; exit 1; }
