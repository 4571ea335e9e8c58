#!/usr/bin/env python3
"""An outside client for Membrane's Hubble API: Python grpcio (gRPC's C core) with protobuf classes that
protoc generates from proto/ at run time. It proves that another gRPC and protobuf implementation reads
what the agent writes (Membrane writes GetFlows responses byte by byte itself).

usage: hubble_grpc_client.py SOCKET_PATH NUMBER
prints: one JSON line with the Health/Check status and ServerStatus, then one JSON line per GetFlows
response (proto field names, as `hubble observe -o json`)."""
import importlib
import json
import os
import sys
import tempfile

from google.protobuf import json_format
from grpc_tools import protoc
import grpc


def generate(repo):
    """The Python modules for flow, observer, relay and health, from the repository's own .proto files."""
    out = tempfile.mkdtemp(prefix="membrane-interop-")
    proto_dir = os.path.join(repo, "proto")
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    files = ["flow/flow.proto", "relay/relay.proto", "observer/observer.proto", "health/health.proto"]
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={out}", *files])
    if rc != 0:
        sys.exit(f"protoc failed with {rc}")
    sys.path.insert(0, out)
    return (importlib.import_module("observer.observer_pb2"), importlib.import_module("health.health_pb2"))


def main():
    socket_path, number = sys.argv[1], int(sys.argv[2])
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    observer, health = generate(repo)
    with grpc.insecure_channel(f"unix://{socket_path}") as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                    request_serializer=health.HealthCheckRequest.SerializeToString,
                                    response_deserializer=health.HealthCheckResponse.FromString)
        status = channel.unary_unary("/observer.Observer/ServerStatus",
                                     request_serializer=observer.ServerStatusRequest.SerializeToString,
                                     response_deserializer=observer.ServerStatusResponse.FromString)
        get_flows = channel.unary_stream("/observer.Observer/GetFlows",
                                         request_serializer=observer.GetFlowsRequest.SerializeToString,
                                         response_deserializer=observer.GetFlowsResponse.FromString)
        served = check(health.HealthCheckRequest(service="hubble.server.Observer"), timeout=10)
        s = status(observer.ServerStatusRequest(), timeout=10)
        print(json.dumps({"health": health.HealthCheckResponse.ServingStatus.Name(served.status),
                          "num_flows": s.num_flows, "max_flows": s.max_flows, "seen_flows": s.seen_flows}))
        for response in get_flows(observer.GetFlowsRequest(number=number), timeout=30):
            print(json.dumps(json_format.MessageToDict(response, preserving_proto_field_name=True)))


if __name__ == "__main__":
    main()
