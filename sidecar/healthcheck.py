"""``segment-sidecar healthcheck``: exit 0 when the sidecar's gRPC health service answers SERVING, else 1.

Docker's HEALTHCHECK and Kubernetes exec probes use it: the sidecar listens on loopback, which the kubelet's own gRPC
probe (dialling the pod IP) cannot reach. It asks the address the sidecar listens on (SIDECAR_LISTEN, read as the
sidecar reads it; an address listening on every interface is asked on loopback), or --address.
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar.cli import plain, settings_or_exit

_EVERY_INTERFACE = {"0.0.0.0:": "127.0.0.1:", "[::]:": "[::1]:"}
"""Listen addresses meaning every interface, and the loopback address that reaches them from this machine."""


def main(argv: list[str]) -> int:
    """Check the sidecar at --address (default: SIDECAR_LISTEN's value)."""
    parser = argparse.ArgumentParser(
        prog="segment-sidecar healthcheck",
        description=plain(__doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--address", help="host:port or unix:/path (default: SIDECAR_LISTEN's value)")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    args = parser.parse_args(argv)
    address: str = args.address if args.address is not None else settings_or_exit().listen
    for every, loopback in _EVERY_INTERFACE.items():
        if address.startswith(every):
            address = loopback + address.removeprefix(every)
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=args.timeout)
        except grpc.RpcError as error:
            print(f"unhealthy: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(status)
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1
