"""In-memory fakes of the services' ports, for the unit tier (no NATS, no Redis)."""
