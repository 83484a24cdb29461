"""`make bench`: Atrium's REST and callback latency beside a bare FastAPI+Redis floor."""
