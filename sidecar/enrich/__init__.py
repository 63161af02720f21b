"""Enrichment: the fields Segment and the partner program require on every event, added once before spooling."""
