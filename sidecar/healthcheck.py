"""``segment-sidecar healthcheck``: exit 0 when the sidecar's gRPC health service answers SERVING, else 1.

Docker's HEALTHCHECK and Kubernetes exec probes use it: the sidecar listens on loopback, which the kubelet's own gRPC
probe (dialling the pod IP) cannot reach.
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(argv: list[str]) -> int:
    """Check the sidecar at --address (default: $SIDECAR_LISTEN, else 127.0.0.1:50051)."""
    parser = argparse.ArgumentParser(prog="segment-sidecar healthcheck", description=__doc__)
    parser.add_argument("--address", default=os.environ.get("SIDECAR_LISTEN", "127.0.0.1:50051"))
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    args = parser.parse_args(argv)
    address = args.address.replace("0.0.0.0:", "127.0.0.1:")
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=args.timeout)
        except grpc.RpcError as error:
            print(f"unhealthy: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(status)
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1
