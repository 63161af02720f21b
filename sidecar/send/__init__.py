"""Delivery: pace, send, classify the answer, and decide what happens to a batch next."""
