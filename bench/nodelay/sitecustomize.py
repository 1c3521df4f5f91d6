"""`bench/run --only codec --server-nodelay`: JupyterLab's websockets with TCP_NODELAY.

An experiment, not a fix: jupyter_server never calls `set_nodelay(True)` on its kernel
websockets, so a small message to the page that follows another one still unacknowledged waits
for the browser's delayed ACK (up to 40 ms; loopback's 64 KB MSS makes every message small). The
bench puts this folder on the JupyterLab process's PYTHONPATH to measure what a server extension
setting TCP_NODELAY would give the comm transports. Nothing else imports it.
"""

from __future__ import annotations

from typing import Any

try:
    import tornado.websocket as _websocket
except ImportError:  # not a process that serves websockets
    _websocket = None  # type: ignore[assignment]

if _websocket is not None:
    _receive = _websocket.WebSocketProtocol13._receive_frame_loop

    async def _nodelay_then_receive(self: Any) -> None:
        self.stream.set_nodelay(True)
        await _receive(self)

    _websocket.WebSocketProtocol13._receive_frame_loop = _nodelay_then_receive  # type: ignore[method-assign]
