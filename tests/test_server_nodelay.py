"""decart_nb_server, the jupyter_server extension: kernel websockets get TCP_NODELAY.

A real JupyterLab server (harness/lab.py) with a kernel; the test opens the kernel's
websocket, then reads TCP_NODELAY from the server's own end of that connection: pidfd_getfd
(Linux 5.6+) copies the server's socket into this process, no timing involved. With the extension
disabled in the server's config the same socket has TCP_NODELAY off, so the check can fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from errno import EBADF
from pathlib import Path

import pytest
import websocket

from decart_nb_server import nodelay_connection_class
from harness.lab import JupyterLab

EXTENSION = "decart_nb_server"
LOADED_LINE = "decart_nb_server: TCP_NODELAY on kernel websockets"
SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture
REPLY_S = 60.0


# -- the server's end of a connection ---------------------------------------------------------
def _pidfd_getfd(pid: int, fd: int) -> int | None:
    """A copy of process `pid`'s file descriptor `fd` (the server is our child: ptrace allows it),
    or None when the server closed it meanwhile."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        copy = int(libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0))
    finally:
        os.close(pidfd)
    errno = ctypes.get_errno()
    if copy < 0 and errno == EBADF:
        return None
    if copy < 0:
        pytest.skip(f"pidfd_getfd is not allowed here: {os.strerror(errno)}")
    return copy


def _server_nodelay(pid: int, client: socket.socket) -> int:
    """TCP_NODELAY on the server's end of `client`'s TCP connection."""
    peer = client.getsockname()
    for fd in _socket_fds(pid):
        copy = _pidfd_getfd(pid, fd)
        if copy is None:
            continue
        try:
            sock = socket.socket(fileno=copy)
        except OSError:  # the number was reused for something else meanwhile
            os.close(copy)
            continue
        try:
            if sock.family == socket.AF_INET and sock.type == socket.SOCK_STREAM and _peer(sock) == peer:
                return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        finally:
            sock.close()  # our copy only: the server's descriptor stays open
    raise AssertionError(f"no socket of the server ({pid}) is connected to {peer}")


def _socket_fds(pid: int) -> list[int]:
    fds = []
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            if os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                fds.append(int(name))
    return fds


def _peer(sock: socket.socket) -> object:
    try:
        return sock.getpeername()
    except OSError:  # a listening socket
        return None


# -- a kernel and its websocket ---------------------------------------------------------------
def _kernel_info_request(session: str) -> str:
    header = {
        "msg_id": uuid.uuid4().hex,
        "msg_type": "kernel_info_request",
        "username": "test",
        "session": session,
        "date": "2026-12-01T00:00:00Z",
        "version": "5.3",
    }
    message = {"header": header, "parent_header": {}, "metadata": {}, "content": {}, "channel": "shell"}
    return json.dumps(message)


def _open_kernel_websocket(lab: JupyterLab, kernel_id: str) -> websocket.WebSocket:
    """The kernel's websocket (legacy JSON protocol), once a kernel_info_reply came back over it:
    tornado reads no message before `open` (and so the connection's `connect`) has returned."""
    session = uuid.uuid4().hex
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{lab.port}/api/kernels/{kernel_id}/channels?session_id={session}",
        header=[f"Authorization: token {lab.token}"],
        timeout=REPLY_S,
    )
    ws.send(_kernel_info_request(session))
    replied = False
    while not replied:  # iopub status messages come first
        replied = json.loads(ws.recv())["header"]["msg_type"] == "kernel_info_reply"
    return ws


@dataclass
class Served:
    lab: JupyterLab
    enabled: bool


@pytest.fixture(scope="module", params=[True, False], ids=["enabled", "disabled"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """JupyterLab with decart_nb_server as installed (enabled), or turned off in the user config."""
    root = tmp_path_factory.mktemp("lab")
    if not request.param:
        config = root / ".jupyter" / "config"  # the harness's JUPYTER_CONFIG_DIR
        config.mkdir(parents=True)
        off = {"ServerApp": {"jpserver_extensions": {EXTENSION: False}}}
        (config / "jupyter_server_config.json").write_text(json.dumps(off))
    with JupyterLab.start(root) as lab:
        yield Served(lab, request.param)


def test_kernel_websockets_have_tcp_nodelay_on_the_server_side(served: Served) -> None:
    lab = served.lab
    kernel = lab.api("POST", "kernels", {"name": "python3"})
    try:
        ws = _open_kernel_websocket(lab, kernel["id"])
        try:
            assert ws.sock is not None
            nodelay = _server_nodelay(lab.process.pid, ws.sock)
        finally:
            ws.close()
    finally:
        lab.api("DELETE", f"kernels/{kernel['id']}")
    log = lab.log_tail(200_000)
    assert (LOADED_LINE in log) == served.enabled, log[-3000:]
    assert bool(nodelay) == served.enabled, log[-3000:]


def test_the_server_does_not_load_the_kernel_runtime(served: Served) -> None:
    """aiortc and av (decart_nb's imports) are not mapped into the server process."""
    maps = Path(f"/proc/{served.lab.process.pid}/maps").read_text()
    assert "/aiortc/" not in maps and "/av/" not in maps


# -- the module alone -------------------------------------------------------------------------
def test_importing_the_extension_does_not_import_decart_nb() -> None:
    code = (
        "import sys, decart_nb_server\n"
        "heavy = {'decart_nb', 'aiortc', 'av', 'anywidget', 'numpy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


class _Handler:
    ws_connection = object()

    def __init__(self) -> None:
        self.nodelay: list[bool] = []

    def set_nodelay(self, value: bool) -> None:
        self.nodelay.append(value)


class _SyncConnect:
    """Its connect returns the set_nodelay calls it saw (there must be one before it runs)."""

    websocket_handler: _Handler

    def connect(self) -> str:
        return f"sync {self.websocket_handler.nodelay}"


class _AsyncConnect(_SyncConnect):
    async def connect(self) -> str:  # type: ignore[override]
        return f"async {self.websocket_handler.nodelay}"


@pytest.mark.parametrize(("base", "returns"), [(_SyncConnect, "sync"), (_AsyncConnect, "async")])
def test_connect_sets_nodelay_then_keeps_the_base_behaviour(base: type[_SyncConnect], returns: str) -> None:
    cls = nodelay_connection_class(base)
    assert issubclass(cls, base) and nodelay_connection_class(cls) is cls  # loaded twice: once
    connection = cls()
    connection.websocket_handler = handler = _Handler()
    result = connection.connect()
    assert (asyncio.run(result) if asyncio.iscoroutine(result) else result) == f"{returns} [True]"
    assert handler.nodelay == [True]
