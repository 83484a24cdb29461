"""Adapters of the recording service: Redis (records, transaction, queries), NATS (commands to
the media workers, the room service's RPC), media storage (local folder; S3 to be plugged)."""
