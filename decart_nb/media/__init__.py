"""Sources, newest-frame-wins stages and sinks. Every piece is an aiortc MediaStreamTrack."""
