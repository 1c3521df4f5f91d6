"""Attacks on decart_nb_server's media relay by a logged-in client (issue 19, item 6).

A real JupyterLab server relays (harness/lab.py, as in tests/test_server_relay.py). The
attacker holds the server's token: it may open relays, so what it must not do is make the server
answer 500 with a traceback, or keep memory (beyond a bound while it holds connections, and none
after it closed them). Memory is the server's resident size (/proc/<pid>/status): the server runs
with glibc's mmap threshold fixed at 128 KiB, so a large buffer is mapped on its own and unmapped
when freed (the default threshold grows after a free, and freed memory may then stay in the heap,
which would hide a release). Waits are on socket queues (/proc/net/tcp) with a timeout, never on
a sleep.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import websocket

from decart_nb_server.relay import MAGIC, MAX_FRAME, MAX_RELAYS
from harness.lab import JupyterLab
from tests.test_server_relay import WAIT_S, frame, recv

MIB = 1 << 20
SLACK = 16 * MIB  # what the server's resident size may move by on its own during an attack
KEPT_SLACK = 8 * MIB  # ... and after one (1 MiB here; buffers not emptied on close: 16 MiB)
MMAP_THRESHOLD = str(128 * 1024)
AGE_REQUESTS = 60


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    env = {"MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD}
    with JupyterLab.start(tmp_path_factory.mktemp("lab"), env=env) as server:
        yield server


class Kernel:
    """Kernel ends: a listener that says MAGIC on every connection and echoes its frames."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        with conn:
            conn.sendall(frame(MAGIC))
            while data := _recv(conn):
                conn.sendall(data)  # frames come back as they went: the relay frames both ways alike

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()


def _recv(conn: socket.socket) -> bytes:
    try:
        return conn.recv(1 << 16)
    except OSError:
        return b""


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    end = Kernel()
    yield end
    end.close()


def connect(lab: JupyterLab, path: str) -> websocket.WebSocket:
    return websocket.create_connection(
        f"ws://127.0.0.1:{lab.port}/decart_nb/media/{path}",
        header=[f"Authorization: token {lab.token}"],
        timeout=WAIT_S,
    )


def echoes(ws: websocket.WebSocket) -> bool:
    body = secrets.token_bytes(64)
    ws.send_binary(body)
    return recv(ws) == (websocket.ABNF.OPCODE_BINARY, body)


def rss(lab: JupyterLab) -> int:
    for line in Path(f"/proc/{lab.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def log_since(lab: JupyterLab, start: int) -> str:
    return lab.log.read_text(errors="replace")[start:]


def log_size(lab: JupyterLab) -> int:
    return len(lab.log.read_text(errors="replace"))


# -- bad ports: 400, never a 500 with a traceback -------------------------------------------------
def _raw_upgrade(lab: JupyterLab, path: bytes) -> int:
    """The HTTP status of a websocket upgrade for `path` (raw bytes: no client re-encodes them)."""
    request = (
        b"GET /decart_nb/media/" + path + b" HTTP/1.1\r\n"
        b"Host: 127.0.0.1:" + str(lab.port).encode() + b"\r\n"
        b"Authorization: token " + lab.token.encode() + b"\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", lab.port), timeout=WAIT_S) as sock:
        sock.sendall(request)
        head = b""
        while b"\r\n" not in head and (data := sock.recv(4096)):
            head += data
    return int(head.split()[1])


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(b"9" * 5000, id="5000-digits"),  # int() refuses over 4300 digits: ValueError
        pytest.param(b"0", id="zero"),
        pytest.param(b"65536", id="65536"),
        pytest.param(b"99999999999999999999", id="20-digits"),
        pytest.param(b"00080", id="leading-zeros"),
        pytest.param(b"%D9%A1", id="arabic-indic-digit"),  # a digit for \d and int(), decoded by tornado
        pytest.param("\u0661\u0662".encode(), id="raw-unicode-digits"),
        pytest.param(b"%EF%BC%98%EF%BC%90", id="fullwidth-digits"),
        pytest.param(b"8_0", id="underscore"),
        pytest.param(b"+80", id="plus"),
        pytest.param(b"%2080", id="space"),
        pytest.param(b"abc", id="letters"),
        pytest.param(b"%FF", id="not-utf8"),
    ],
)
def test_a_malformed_port_is_400_without_a_traceback(lab: JupyterLab, path: bytes) -> None:
    start = log_size(lab)
    assert _raw_upgrade(lab, path) == 400
    log = log_since(lab, start)
    assert "Traceback" not in log and " 500 " not in log, log[-3000:]


# -- memory: partial and fragmented messages ------------------------------------------------------
def _masked(opcode: int, fin: bool, length: int) -> bytes:
    """A client frame's header for `length` payload bytes, with a zero mask (the payload goes
    as it is)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", length)
    return head + b"\0\0\0\0"


def _send_quietly(ws: websocket.WebSocket, data: bytes) -> None:
    """Raw bytes to the server; a connection it has closed (a message too big) is what we want."""
    assert ws.sock is not None
    with contextlib.suppress(OSError):
        ws.sock.sendall(data)


def _tcp_queues(port: int) -> list[tuple[int, int, int, int, int]]:
    """(local port, remote port, state, tx queue, rx queue) of the TCP sockets with `port` at
    either end (this network namespace's /proc/net/tcp)."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(a.split(":")[1], 16) for a in fields[1:3])
        tx, rx = (int(q, 16) for q in fields[4].split(":"))
        if port in (local, remote):
            rows.append((local, remote, int(fields[3], 16), tx, rx))
    return rows


def _wait(condition: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < end, what
        time.sleep(0.05)


def wait_read(lab: JupyterLab) -> None:
    """Until the server has read everything sent to it: no bytes queued on its connections."""
    _wait(lambda: all(tx == 0 and rx == 0 for *_, tx, rx in _tcp_queues(lab.port)), "the server reads")


OPEN_STATES = {0x01, 0x08}  # ESTABLISHED, CLOSE_WAIT (the peer closed, the server has not yet)


def wait_closed(lab: JupyterLab, ports: set[int]) -> None:
    """Until the server has closed its end of the connections from these client ports."""

    def closed() -> bool:
        rows = _tcp_queues(lab.port)
        return not any(loc == lab.port and rem in ports and st in OPEN_STATES for loc, rem, st, *_ in rows)

    _wait(closed, "the server closes the attackers' connections")


def age(lab: JupyterLab) -> None:
    """Work that makes the server's garbage collector run often enough to move the relays' objects
    to its oldest generation, as a long-running server does: freed there only by a full
    collection, which may not come for long (so a closed relay must not leave its buffers to it)."""
    for _ in range(AGE_REQUESTS):
        lab.api("GET", "contents")
        lab.api("GET", "kernelspecs")


def attackers(lab: JupyterLab, port: int, count: int) -> tuple[list[websocket.WebSocket], int]:
    """Up to `count` relays; (the opened ones, how many were refused with 503)."""
    opened, refused = [], 0
    for _ in range(count):
        try:
            opened.append(connect(lab, str(port)))
        except websocket.WebSocketBadStatusException as exc:
            assert exc.status_code == 503, exc
            refused += 1
    return opened, refused


def close_all(lab: JupyterLab, clients: list[websocket.WebSocket]) -> None:
    """Close the clients' sockets, then wait until the server closed its ends."""
    ports = set()
    for ws in clients:
        assert ws.sock is not None
        with contextlib.suppress(OSError):  # the server may have closed it already
            ports.add(ws.sock.getsockname()[1])
            ws.sock.shutdown(socket.SHUT_RDWR)
        ws.sock.close()
    wait_closed(lab, ports)


def test_fragments_over_the_limit_are_refused_and_memory_stays_bounded(
    lab: JupyterLab, kernel: Kernel
) -> None:
    """Each attacker sends 6 MiB of a message in 1 MiB fragments (and never finishes it): the
    relay refuses it once the fragments pass MAX_FRAME, so the server never holds them."""
    base = rss(lab)
    clients, _ = attackers(lab, kernel.port, MAX_RELAYS + 8)
    try:
        assert len(clients) <= MAX_RELAYS
        fragment = bytes(MIB)
        for ws in clients:
            _send_quietly(ws, _masked(2, False, MIB) + fragment)
            for _ in range(5):
                _send_quietly(ws, _masked(0, False, MIB) + fragment)
        wait_read(lab)
        held = rss(lab) - base
        assert held < MAX_RELAYS * MAX_FRAME + SLACK, f"{held / MIB:.0f} MiB held"
        for ws in clients:  # each one closed with 1009 (or reset while it still sent)
            with contextlib.suppress(OSError, websocket.WebSocketException):
                assert recv(ws)[0] == websocket.ABNF.OPCODE_CLOSE
    finally:
        close_all(lab, clients)


def test_partial_messages_are_released_on_close_and_relays_still_work(
    lab: JupyterLab, kernel: Kernel
) -> None:
    """Attackers fill every free relay with a message just under MAX_FRAME (a 1 MiB fragment,
    then a frame cut short). While they hold it the server holds at most that; a relay opened
    before goes on relaying; once they close, the server keeps nothing and a new relay works."""
    legit = connect(lab, str(kernel.port))
    assert echoes(legit)
    base = rss(lab)
    clients, refused = attackers(lab, kernel.port, MAX_RELAYS - 1)
    try:
        assert (len(clients), refused) == (MAX_RELAYS - 1, 0)
        rest = MAX_FRAME - MIB
        for ws in clients:
            _send_quietly(ws, _masked(2, False, MIB) + bytes(MIB))
            _send_quietly(ws, _masked(0, True, rest) + bytes(rest - 4096))
        wait_read(lab)
        held = rss(lab) - base
        assert held < len(clients) * MAX_FRAME + SLACK, f"{held / MIB:.0f} MiB held"
        assert echoes(legit)
        age(lab)
    finally:
        close_all(lab, clients)
    kept = rss(lab) - base
    assert kept < KEPT_SLACK, f"{kept / MIB:.0f} MiB kept after the attackers closed"
    assert echoes(legit)
    legit.close()
    again = connect(lab, str(kernel.port))
    assert echoes(again)
    again.close()


def test_relays_over_the_cap_are_refused_with_503(lab: JupyterLab, kernel: Kernel) -> None:
    clients, refused = attackers(lab, kernel.port, MAX_RELAYS + 1)
    try:
        assert (len(clients), refused) == (MAX_RELAYS, 1)
        assert all(echoes(ws) for ws in clients[:2])  # the ones in relay as before
    finally:
        close_all(lab, clients)
    _wait(lambda: _opens(lab, kernel), "a relay opens once the others closed")


def _opens(lab: JupyterLab, kernel: Kernel) -> bool:
    """A relay opens and relays (False while the server still counts closing ones)."""
    try:
        ws = connect(lab, str(kernel.port))
    except websocket.WebSocketBadStatusException as exc:
        assert exc.status_code == 503, exc
        return False
    try:
        return echoes(ws)
    finally:
        ws.close()
