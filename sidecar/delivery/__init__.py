"""Batching: per (write key, region) accumulation and the fair, paced scheduling of batch requests."""
