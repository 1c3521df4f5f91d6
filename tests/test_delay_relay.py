"""harness/delay.py: the delaying relay adds its round trip and carries every byte, in order."""

from __future__ import annotations

import socket
import threading
import time

from harness.delay import delayed

RTT_MS = 80.0


def echo_server() -> tuple[socket.socket, threading.Thread]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


def test_the_relay_delays_each_round_trip_and_keeps_the_bytes() -> None:
    server, thread = echo_server()
    with server, delayed(server.getsockname()[1], RTT_MS) as relay:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=30) as conn:
            payload = bytes(range(256)) * 4096  # 1 MiB: several reads and writes each way
            started = time.monotonic()
            conn.sendall(b"x")
            assert conn.recv(1) == b"x"
            took = time.monotonic() - started
            sender = threading.Thread(target=conn.sendall, args=(payload,))
            sender.start()
            got = bytearray()
            while len(got) < len(payload):
                got += conn.recv(65536)
            sender.join(30)
        assert bytes(got) == payload
        assert relay.connections == 1
    # A round trip can only be slower than the delay, never faster: no flaky floor on a busy machine.
    assert took >= RTT_MS / 1000 * 0.95, f"round trip {took * 1000:.0f} ms through a {RTT_MS} ms relay"
    thread.join(10)
