"""Adapters of the track service: Redis (records, transaction, queries), NATS (publisher)."""
