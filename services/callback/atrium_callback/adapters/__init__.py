"""Adapters: Redis (queues, leases, delivery log) and HTTP (sending the callbacks)."""
