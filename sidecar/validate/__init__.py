"""Validation: the partner rules every call must meet, and the Spec conformance check."""
