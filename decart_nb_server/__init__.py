"""decart_nb's jupyter_server extension: TCP_NODELAY on kernel websockets, and the media relay.

1. jupyter_server never calls `set_nodelay(True)` on its kernel websockets, so a small message to
the page that follows another one not yet acknowledged waits for the browser's delayed ACK (up
to 40 ms): the comm video transports (a chunk or two in flight, acknowledged per chunk) see
~50 ms from send to ack instead of ~20 ms. This extension turns TCP_NODELAY on for kernel
websockets only, by subclassing the configured `ServerApp.kernel_websocket_connection_class`.

2. The media socket (relay.py): a websocket at `{base_url}decart_nb/media/<port>` relayed to a
CameraWidget's TCP listener on 127.0.0.1:<port> (it must say MAGIC first), so VP8 chunks, acks
and key-frame requests skip Jupyter's messages (their headers and iopub status messages take
about half of a 1 Mbit/s link). Without this extension the page keeps everything on the comm.

3. Compressed responses (compression.py): gzip for static files (JupyterLab's chunks) and permessage-deflate
on kernel websockets (widget state), which jupyter_server leaves off: a first display of a camera
session on a slow link waits for both.

A package of its own, next to decart_nb: the server process imports it, and importing decart_nb
would load the kernel-side runtime (aiortc, av, anywidget) into the server.
jupyter-config/jupyter_server_config.d/decart_nb_server.json enables it on install.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from jupyter_server.utils import url_path_join
from tornado.web import Application

from .compression import compress_responses
from .nodelay import nodelay_connection_class
from .relay import MAGIC, MAX_FRAME, URL_PATTERN, MediaRelayHandler

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

__all__ = [
    "MAGIC",
    "MAX_FRAME",
    "RELAY_ENV",
    "URL_PATTERN",
    "MediaRelayHandler",
    "compress_responses",
    "nodelay_connection_class",
]

SETTING = "kernel_websocket_connection_class"
RELAY_ENV = "DECART_NB_MEDIA_RELAY"  # decart_nb.widgets.media_socket reads it (a test pins the two)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "decart_nb_server"}]


def _load_jupyter_server_extension(serverapp: ServerApp) -> None:
    """Swap the web app's kernel websocket connection class for its TCP_NODELAY subclass, serve the
    media relay, and compress responses."""
    settings = serverapp.web_app.settings
    configured = settings[SETTING]
    settings[SETTING] = nodelay_connection_class(configured)
    serverapp.log.info(
        "decart_nb_server: TCP_NODELAY on kernel websockets (%s.%s)",
        configured.__module__,
        configured.__qualname__,
    )
    web_app: Application = serverapp.web_app
    route = url_path_join(web_app.settings["base_url"], URL_PATTERN)
    web_app.add_handlers(".*$", [(route, MediaRelayHandler)])
    serverapp.log.info("decart_nb_server: media relay at %s", route)
    for what in compress_responses(web_app):
        serverapp.log.info("decart_nb_server: %s", what)
    os.environ[RELAY_ENV] = "1"  # the kernels this server starts inherit it: they offer the socket
