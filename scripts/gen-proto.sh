#!/usr/bin/env bash
# Regenerates Sources/HubbleAPI/*.swift from proto/ (Membrane's own Hubble wire contract).
#
# Not run by CI: the generated Swift is committed, because building the protoc plugins
# takes ~10 minutes on a 2-core machine. Run it by hand after editing anything in proto/.
#
# Needs:
#   * protoc (Debian: apt-get install -y protobuf-compiler; 3.21.12 is known to work) and
#     its well-known types under /usr/include (same package).
#   * protoc-gen-swift from apple/swift-protobuf 1.39.0 and protoc-gen-grpc-swift-2 from
#     grpc/grpc-swift-protobuf 2.4.1. Build them OUTSIDE this repository, e.g.:
#
#       mkdir -p /work/protoc-tools/Sources/placeholder && cd /work/protoc-tools
#       cat > Package.swift <<'PKG'
#       // swift-tools-version: 6.1
#       import PackageDescription
#       let package = Package(
#           name: "protoc-tools",
#           dependencies: [
#               .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
#               .package(url: "https://github.com/grpc/grpc-swift-protobuf", exact: "2.4.1"),
#           ],
#           targets: [.target(name: "placeholder")])
#       PKG
#       echo '// empty' > Sources/placeholder/empty.swift
#       swift build -c release --product protoc-gen-swift
#       swift build -c release --product protoc-gen-grpc-swift-2
#
#     Then point PLUGIN_DIR at /work/protoc-tools/.build/release (the default below).
#
# The versions must match the runtime libraries in Package.swift: generated code checks
# the SwiftProtobuf runtime version at compile time.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
PLUGIN_DIR="${PLUGIN_DIR:-/work/protoc-tools/.build/release}"
PROTOC="${PROTOC:-protoc}"
WKT_INCLUDE="${WKT_INCLUDE:-/usr/include}"
out="$repo/Sources/HubbleAPI"

for tool in "$PLUGIN_DIR/protoc-gen-swift" "$PLUGIN_DIR/protoc-gen-grpc-swift-2"; do
  [[ -x "$tool" ]] || { echo "missing $tool (see the header of $0)" >&2; exit 1; }
done
command -v "$PROTOC" >/dev/null || { echo "missing protoc (apt-get install -y protobuf-compiler)" >&2; exit 1; }

cd "$repo/proto"
# Messages for every file; services only exist in observer, health and peer.
messages=(flow/flow.proto relay/relay.proto observer/observer.proto health/health.proto peer/peer.proto)
services=(observer/observer.proto health/health.proto peer/peer.proto)

rm -f "$out"/*.pb.swift "$out"/*.grpc.swift
mkdir -p "$out"

"$PROTOC" -I . -I "$WKT_INCLUDE" \
  --plugin=protoc-gen-swift="$PLUGIN_DIR/protoc-gen-swift" \
  --swift_opt=Visibility=Public \
  --swift_opt=FileNaming=DropPath \
  --swift_out="$out" \
  "${messages[@]}"

"$PROTOC" -I . -I "$WKT_INCLUDE" \
  --plugin=protoc-gen-grpc-swift-2="$PLUGIN_DIR/protoc-gen-grpc-swift-2" \
  --grpc-swift-2_opt=Visibility=Public \
  --grpc-swift-2_opt=Server=true \
  --grpc-swift-2_opt=Client=true \
  --grpc-swift-2_opt=FileNaming=DropPath \
  --grpc-swift-2_out="$out" \
  "${services[@]}"

echo "generated into $out:"
ls -1 "$out"
