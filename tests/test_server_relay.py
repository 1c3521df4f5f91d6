"""decart_nb_server's media relay: a websocket at {base_url}decart_nb/media/<port> <-> 127.0.0.1:<port>.

A real JupyterLab server (harness/lab.py) relays; the test plays both other parties: the
page (a websocket-client connection) and the kernel end (`FarEnd`, a TCP listener whose reader and
writer threads keep both directions flowing, so a large frame cannot deadlock the test). Nothing
sleeps: every wait is on a socket, a queue or an event, with a timeout.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import struct
import threading
import urllib.request
from collections.abc import Iterator

import pytest
import websocket

from decart_nb_server import MAGIC, MAX_FRAME
from harness.lab import JupyterLab
from tests.test_server_nodelay import _server_nodelay

WAIT_S = 30.0  # generous: the machine is small and shared
RELAY_LINE = "decart_nb_server: media relay at /decart_nb/media/"


def frame(body: bytes) -> bytes:
    return struct.pack("<I", len(body)) + body


class FarEnd:
    """The kernel's end: listens on 127.0.0.1, accepts connections one after another, says `hello`
    first (raw bytes, None: nothing), then reads. `framed`: it reads frames into `frames` (echoed
    back when `echo`); otherwise it reads raw bytes into `raw`. `eof` is set when the relay closed
    the current connection."""

    def __init__(self, hello: bytes | None = frame(MAGIC), *, framed: bool = True, echo: bool = False):
        self.hello, self.framed, self.echo = hello, framed, echo
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.connections: queue.Queue[socket.socket] = queue.Queue()
        self.frames: queue.Queue[bytes] = queue.Queue()
        self.raw = bytearray()
        self.eof = threading.Event()
        self.accepted = 0
        self._outgoing: queue.Queue[bytes | None] = queue.Queue()
        self.conn: socket.socket | None = None
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed by close()
                return
            self.accepted += 1
            self.conn = conn
            self.eof.clear()
            if self.hello is not None:
                conn.sendall(self.hello)
            threading.Thread(target=self._write, args=(conn,), daemon=True).start()
            self.connections.put(conn)
            self._read(conn)

    def _read(self, conn: socket.socket) -> None:
        pending = b""
        while True:
            try:
                data = conn.recv(1 << 20)
            except OSError:
                data = b""
            if not data:
                self.eof.set()
                return
            if not self.framed:
                self.raw += data
                continue
            pending += data
            while len(pending) >= 4:
                (length,) = struct.unpack("<I", pending[:4])
                if len(pending) < 4 + length:
                    break
                body, pending = pending[4 : 4 + length], pending[4 + length :]
                self.frames.put(body)
                if self.echo:
                    self._outgoing.put(frame(body))

    def _write(self, conn: socket.socket) -> None:
        while (data := self._outgoing.get()) is not None:
            try:
                conn.sendall(data)
            except OSError:
                return

    def send(self, data: bytes) -> None:
        """Raw bytes to the relay (frame() them for a frame), from the writer thread."""
        self._outgoing.put(data)

    def wait_connection(self) -> socket.socket:
        return self.connections.get(timeout=WAIT_S)

    def next_frame(self) -> bytes:
        return self.frames.get(timeout=WAIT_S)

    def close_connection(self) -> None:
        assert self.conn is not None
        self.conn.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._outgoing.put(None)
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept (close alone does not)
        self.listener.close()
        if self.conn is not None:
            self.conn.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    with JupyterLab.start(tmp_path_factory.mktemp("lab")) as server:
        yield server


@pytest.fixture
def far() -> Iterator[FarEnd]:
    end = FarEnd()
    yield end
    end.close()


def url(lab: JupyterLab, port: int | str) -> str:
    return f"ws://127.0.0.1:{lab.port}/decart_nb/media/{port}"


def connect(
    lab: JupyterLab, port: int, header: list[str] | None = None, origin: str | None = None
) -> websocket.WebSocket:
    """The relay's websocket; by default token-authenticated, with websocket-client's own Origin."""
    if header is None:
        header = [f"Authorization: token {lab.token}"]
    return websocket.create_connection(url(lab, port), header=header, origin=origin, timeout=WAIT_S)


def live(lab: JupyterLab, far: FarEnd) -> websocket.WebSocket:
    """A relayed connection, once a frame went through it (so the relay is past its MAGIC check)."""
    ws = connect(lab, far.port)
    far.wait_connection()
    far.send(frame(b"live?"))
    assert recv(ws) == (websocket.ABNF.OPCODE_BINARY, b"live?")
    return ws


def recv(ws: websocket.WebSocket) -> tuple[int, bytes]:
    """The next message, or (OPCODE_CLOSE, code + reason) when the relay closed the websocket."""
    opcode, data = ws.recv_data(control_frame=False)
    return opcode, bytes(data)


def close_code(ws: websocket.WebSocket) -> tuple[int, str]:
    """Reads to the relay's close frame: its code and reason (a message before it fails the test)."""
    opcode, data = recv(ws)
    assert opcode == websocket.ABNF.OPCODE_CLOSE, (opcode, data[:100])
    return struct.unpack("!H", data[:2])[0], data[2:].decode()


# -- relaying -------------------------------------------------------------------------------------
def test_frames_relay_both_ways_byte_for_byte(lab: JupyterLab, far: FarEnd) -> None:
    ws = live(lab, far)
    try:
        big = bytes(range(256)) * 4096  # 1 MiB
        ws.send_binary(big)
        assert far.next_frame() == big
        far.send(frame(big[::-1]))
        assert recv(ws) == (websocket.ABNF.OPCODE_BINARY, big[::-1])
        largest = bytes(range(251)) * (MAX_FRAME // 251) + b"\x07" * (MAX_FRAME % 251)
        assert len(largest) == MAX_FRAME  # the relay's limit, either way
        ws.send_binary(largest)
        assert far.next_frame() == largest
        far.send(frame(largest))
        assert recv(ws) == (websocket.ABNF.OPCODE_BINARY, largest)
        ws.send_binary(b"")  # an empty message is an empty frame
        assert far.next_frame() == b""
    finally:
        ws.close()


def test_many_small_frames_keep_their_order(lab: JupyterLab) -> None:
    far = FarEnd(echo=True)
    try:
        ws = live(lab, far)
        bodies = [struct.pack("<I", n) * (n % 50) + bytes([n % 256]) for n in range(2000)]
        for body in bodies:
            ws.send_binary(body)
        echoed = [recv(ws) for _ in bodies]
        assert echoed == [(websocket.ABNF.OPCODE_BINARY, body) for body in bodies]
        ws.close()
    finally:
        far.close()


def test_tcp_nodelay_on_both_of_the_relays_sockets(lab: JupyterLab, far: FarEnd) -> None:
    ws = live(lab, far)
    try:
        assert ws.sock is not None and far.conn is not None
        assert _server_nodelay(lab.process.pid, ws.sock), "the websocket"
        assert _server_nodelay(lab.process.pid, far.conn), "the TCP connection to the kernel"
    finally:
        ws.close()


def test_the_extension_logs_the_relay(lab: JupyterLab, far: FarEnd) -> None:
    live(lab, far).close()
    assert far.eof.wait(WAIT_S)
    log = lab.log_tail(200_000)
    assert RELAY_LINE in log, log[-3000:]
    assert f"decart_nb media relay: page <-> 127.0.0.1:{far.port}" in log, log[-3000:]
    assert f"decart_nb media relay: page closed (port {far.port}" in log, log[-3000:]


# -- closing ----------------------------------------------------------------------------------------
def test_the_kernel_closing_closes_the_websocket(lab: JupyterLab, far: FarEnd) -> None:
    ws = live(lab, far)
    far.close_connection()
    assert close_code(ws) == (1000, "the kernel closed the media socket")


def test_the_websocket_closing_closes_the_kernel_connection(lab: JupyterLab, far: FarEnd) -> None:
    ws = live(lab, far)
    ws.close()
    assert far.eof.wait(WAIT_S)


def test_a_text_message_closes_both(lab: JupyterLab, far: FarEnd) -> None:
    ws = live(lab, far)
    ws.send("text")
    assert close_code(ws)[0] == 1003
    assert far.eof.wait(WAIT_S)
    assert far.frames.empty()


def test_a_frame_over_max_frame_from_the_kernel_closes_both(lab: JupyterLab, far: FarEnd) -> None:
    ws = live(lab, far)
    far.send(struct.pack("<I", MAX_FRAME + 1))  # the length is enough: the relay reads no further
    assert close_code(ws)[0] == 1009
    assert far.eof.wait(WAIT_S)


def test_a_message_over_max_frame_from_the_page_closes_both(lab: JupyterLab, far: FarEnd) -> None:
    ws = live(lab, far)
    # tornado refuses the message from its header (1009) and drops the connection: the rest of
    # the send may meet a reset, and the close frame may be lost with it.
    with contextlib.suppress(OSError, websocket.WebSocketException):
        ws.send_binary(bytes(MAX_FRAME + 1))
    assert far.eof.wait(WAIT_S)
    assert far.frames.empty()


# -- who may connect, to what ---------------------------------------------------------------------
def _login_cookie(lab: JupyterLab) -> str:
    """The login cookie the server sets on a token-authenticated request (a browser's session)."""
    request = urllib.request.Request(
        f"{lab.base}/api/status", headers={"Authorization": f"token {lab.token}"}
    )
    with urllib.request.urlopen(request, timeout=WAIT_S) as response:
        cookies = response.headers.get_all("Set-Cookie") or []
    login = [c.split(";")[0] for c in cookies if c.startswith("username-")]
    assert login, cookies
    return login[0]


@pytest.mark.parametrize(
    ("header", "origin"),
    [
        pytest.param([], None, id="no-token"),
        pytest.param(["Authorization: token wrong"], None, id="wrong-token"),
        pytest.param(["Cookie: {cookie}"], "http://elsewhere.example", id="cookie-foreign-origin"),
    ],
)
def test_refused_without_a_user_or_from_a_foreign_origin(
    lab: JupyterLab, far: FarEnd, header: list[str], origin: str | None
) -> None:
    cookie = _login_cookie(lab)
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(lab, far.port, [h.format(cookie=cookie) for h in header], origin)
    assert refused.value.status_code == 403
    # The same cookie from the server's own origin passes, and its connection is the far end's
    # first: the refused request, finished before it began, connected nowhere.
    ws = connect(lab, far.port, [f"Cookie: {cookie}"], origin=lab.base)
    far.wait_connection()
    far.send(frame(b"after"))
    assert recv(ws) == (websocket.ABNF.OPCODE_BINARY, b"after")
    assert far.accepted == 1
    ws.close()


@pytest.mark.parametrize(
    "hello",
    [
        pytest.param(b"SSH-2.0-OpenSSH_9.2\r\n", id="other-bytes"),
        pytest.param(frame(b"decart_nb-media/2"), id="other-magic"),
        pytest.param(frame(MAGIC)[:10], id="closes-mid-magic"),
        pytest.param(None, id="silent"),  # the relay's 5 s timeout
    ],
)
def test_a_far_end_without_magic_gets_nothing(lab: JupyterLab, hello: bytes | None) -> None:
    far = FarEnd(hello, framed=False)
    try:
        ws = connect(lab, far.port)
        conn = far.wait_connection()
        ws.send_binary(b"secret")
        if hello == frame(MAGIC)[:10]:
            conn.shutdown(socket.SHUT_WR)
        assert close_code(ws) == (1008, "not a decart_nb media socket")
        assert far.eof.wait(WAIT_S)
        assert bytes(far.raw) == b""
    finally:
        far.close()


def test_nothing_listening_closes_the_websocket(lab: JupyterLab) -> None:
    with socket.socket() as bound:  # bound, not listening: the relay's connect is refused
        bound.bind(("127.0.0.1", 0))
        ws = connect(lab, bound.getsockname()[1])
        code, reason = close_code(ws)
    assert code == 1011 and reason.startswith("cannot connect"), reason


@pytest.mark.parametrize("port", ["0", "65536", "99999999999999999999", "9" * 5000, "abc"])
def test_a_port_out_of_range_is_400(lab: JupyterLab, port: str) -> None:
    """More malformed ports, and that none leaves a traceback: tests/security/test_relay.py."""
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(
            f"ws://127.0.0.1:{lab.port}/decart_nb/media/{port}",
            header=[f"Authorization: token {lab.token}"],
            timeout=WAIT_S,
        )
    assert refused.value.status_code == 400


def test_a_malformed_port_needs_a_login_first(lab: JupyterLab) -> None:
    """Refused before the port is looked at: no login, 403 whatever the port says."""
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url(lab, "9" * 5000), timeout=WAIT_S)
    assert refused.value.status_code == 403


def test_without_the_extension_the_url_is_404(tmp_path_factory: pytest.TempPathFactory, far: FarEnd) -> None:
    root = tmp_path_factory.mktemp("lab-off")
    config = root / ".jupyter" / "config"  # the harness's JUPYTER_CONFIG_DIR
    config.mkdir(parents=True)
    off = {"ServerApp": {"jpserver_extensions": {"decart_nb_server": False}}}
    (config / "jupyter_server_config.json").write_text(json.dumps(off))
    with JupyterLab.start(root) as off_lab:
        with pytest.raises(websocket.WebSocketBadStatusException) as missing:
            connect(off_lab, far.port)
        assert missing.value.status_code == 404
        assert RELAY_LINE not in off_lab.log_tail(200_000)
    assert far.accepted == 0
