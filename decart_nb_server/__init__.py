"""decart_nb's jupyter_server extension: TCP_NODELAY on kernel websockets.

jupyter_server never calls `set_nodelay(True)` on its kernel websockets, so a small message to
the page that follows another one not yet acknowledged waits for the browser's delayed ACK (up
to 40 ms): the comm video transports (a chunk or two in flight, acknowledged per chunk) see
~50 ms from send to ack instead of ~20 ms. This extension turns TCP_NODELAY on for kernel
websockets only, by subclassing the configured `ServerApp.kernel_websocket_connection_class`.

A package of its own, next to decart_nb: the server process imports it, and importing decart_nb
would load the kernel-side runtime (aiortc, av, anywidget) into the server.
jupyter-config/jupyter_server_config.d/decart_nb_server.json enables it on install.
"""

from __future__ import annotations

from typing import Any

from .nodelay import nodelay_connection_class

__all__ = ["nodelay_connection_class"]

SETTING = "kernel_websocket_connection_class"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "decart_nb_server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Swap the web app's kernel websocket connection class for its TCP_NODELAY subclass."""
    settings = serverapp.web_app.settings
    configured = settings[SETTING]
    settings[SETTING] = nodelay_connection_class(configured)
    serverapp.log.info(
        "decart_nb_server: TCP_NODELAY on kernel websockets (%s.%s)",
        configured.__module__,
        configured.__qualname__,
    )
