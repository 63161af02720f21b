"""Stubs generated from protos/ by scripts/gen_clients.sh; do not edit."""
