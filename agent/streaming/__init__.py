"""Streaming to and from containers, as kubelet's streaming server does it:
exec, attach and port-forward over WebSocket channel protocols (v4/v5.channel.k8s.io,
tunnelled SPDY) and over SPDY/3.1 (kubectl before 1.30)."""
