"""The media worker's adapters: the control plane over NATS."""
