"""Edge mode: deliver by forwarding to a gateway tier (``SIDECAR_FORWARD_TO``) instead of calling Segment.

``routing`` chooses a gateway per (write key, region) by rendezvous hashing and moves keys off a failing gateway;
``gateways`` keeps the gateway list (static, or re-resolved from DNS); ``convert`` rebuilds ``BatchEvent`` messages
from the enriched JSON an edge holds; ``sender`` is the :class:`~sidecar.delivery.interfaces.Sender` that calls a
gateway's ``Batch`` RPC; ``metrics`` counts what is forwarded (edges) and received from edges (gateways). See
docs/fleet.md.
"""
