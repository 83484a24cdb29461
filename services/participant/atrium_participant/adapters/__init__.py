"""The participant service's ports on real technology: Redis (:mod:`.redis`) and NATS
(:mod:`.nats`)."""
