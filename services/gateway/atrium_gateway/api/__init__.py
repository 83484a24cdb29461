"""The gateway's HTTP and WebSocket adapters: REST v1 routers, /signaling, probes."""
