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


def test_the_relay_counts_each_connections_bytes_under_its_request_line_without_the_query() -> None:
    # bench.codec --trace says which of the page's connections carried the link's bytes.
    server, thread = echo_server()
    with server, delayed(server.getsockname()[1], 0.0) as relay:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=30) as conn:
            request = b"GET /decart_nb/media/123?token=secret HTTP/1.1\r\nHost: x\r\n\r\n"
            conn.sendall(request)
            got = b""
            while len(got) < len(request):
                got += conn.recv(65536)
            deadline = time.monotonic() + 30
            while relay.flows[0].down < len(request) and time.monotonic() < deadline:
                time.sleep(0.01)  # the relay counts on its own thread
        flow = relay.flows[0]
        assert flow.request == "GET /decart_nb/media/123"
        assert (flow.up, flow.down) == (len(request), len(request))
        assert (relay.bytes_up, relay.bytes_down) == (len(request), len(request))
    thread.join(10)
