"""The kernel's WebRTC peer, SDP tweaks and receive-latency tweaks."""
