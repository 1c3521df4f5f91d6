"""A kernel websocket connection class that sets TCP_NODELAY on its websocket when it connects."""

from __future__ import annotations

from jupyter_server.services.kernels.connection.base import BaseKernelWebsocketConnection
from tornado.websocket import WebSocketHandler

Connection = type[BaseKernelWebsocketConnection]


def nodelay_connection_class(base: Connection) -> Connection:
    """A subclass of `base` (the configured kernel websocket connection class, maybe a user's own)
    whose `connect` turns TCP_NODELAY on, then returns what `base.connect` returns: a coroutine,
    a Future or None, so a sync or async `connect` keeps its behaviour. `base` is returned as is
    when it already is one (the extension loaded twice)."""
    if getattr(base, "_decart_nb_nodelay", False):
        return base

    # A class statement, not type(): traitlets' metaclass sets up its traits in __init__.
    class Nodelay(base):  # type: ignore[misc,valid-type]
        _decart_nb_nodelay = True

        def connect(self) -> object:
            set_nodelay(self.websocket_handler)
            return super().connect()

    Nodelay.__name__ = Nodelay.__qualname__ = f"Nodelay{base.__name__}"
    Nodelay.__doc__ = base.__doc__
    return Nodelay


def set_nodelay(handler: WebSocketHandler | None) -> None:
    """TCP_NODELAY on a tornado WebSocketHandler's connection, when it has one (a closed or
    custom handler is left alone: the connection must still go ahead)."""
    if handler is not None and getattr(handler, "ws_connection", None) is not None:
        handler.set_nodelay(True)
