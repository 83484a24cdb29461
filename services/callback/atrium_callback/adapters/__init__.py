"""Adapters: Redis (intake, queues, leases, delivery log), HTTP (sending the callbacks) and
OpenTelemetry (carrying an event's trace to its callback)."""
