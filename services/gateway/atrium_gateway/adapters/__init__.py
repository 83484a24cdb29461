"""The gateway's ports over real technology: NATS (the services, the media workers), Redis."""
