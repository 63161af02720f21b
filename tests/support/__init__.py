"""Test helpers: starting sidecars and reading gRPC error details."""
