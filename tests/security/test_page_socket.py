"""Attacks on the page socket's listener (decart_nb/widgets/media_socket.py) from another user of
the host: loopback access to every port, no Jupyter login, no token. Each test plays the attacker
in Python against a real MediaSocket (the page's side of these attacks, a foreign listener on a
freed port among them, is in test_page_socket_js.py).

- The token never crosses the socket, and a recorded proof is worth nothing on a new connection.
- 1,200 connections that never say anything keep few descriptors of the kernel's, log at most a
  couple of lines, and the page still gets in meanwhile.
- A peer that sends one byte every 0.5 s is closed at the handshake's deadline.
- A peer with the token that floods malformed frames (over many connections) logs a bounded
  number of lines.
- The token is in no log line and no repr.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import time

import pytest

from decart_nb.widgets import media_socket
from decart_nb.widgets import socket_handshake as hs
from decart_nb.widgets.media_socket import BACKLOG, MAGIC, MAX_PENDING, READY, MediaSocket, framed
from tests.test_media_socket import Listener, page_handshake, read_frame

FLOOD = 1200  # connections in the flood (the review's count)
FLOOD_S = 30.0  # the flood's child process ends by then, whatever happens
TEST_OWN_FDS = 3  # the flooder's stdin and stdout pipes, the page's end of its connection

# The attacker: FLOOD connections that never send a byte, held open until stdin closes.
FLOODER = r"""
import socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
held = []
for n in range(count):
    try:
        held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
    except OSError:  # a full backlog refuses or times out: the attacker goes on regardless
        pass
    if n + 1 in (count // 2, count):
        print(n + 1, flush=True)
sys.stdin.read()
"""


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    """decart_nb's warnings (asyncio's own, about tasks a test's loop cancels as it ends, aside)."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name == "decart_nb"]


async def recording_handshake(lis: Listener) -> tuple[list[bytes], list[bytes]]:
    """A page's handshake, recording every frame each way (as the relay would see them)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", lis.media.port)
    sent: list[bytes] = []
    got = [await read_frame(reader), await read_frame(reader)]
    nonce_k = hs.read_field(got[1], hs.NONCE)
    assert got[0] == MAGIC and nonce_k is not None
    nonce_p = hs.new_nonce()
    sent.append(hs.nonce_frame(nonce_p))
    writer.write(framed(sent[-1]))
    got.append(await read_frame(reader))
    assert hs.read_field(got[-1], hs.PROOF) == hs.kernel_proof(
        lis.media.token, lis.media.port, nonce_p, nonce_k
    )
    sent.append(hs.proof_frame(hs.page_proof(lis.media.token, lis.media.port, nonce_k, nonce_p)))
    writer.write(framed(sent[-1]))
    got.append(await read_frame(reader))
    assert got[-1] == bytes([READY])
    writer.close()
    return sent, [g for g in got if g is not None]


def test_the_token_never_crosses_the_socket_and_a_recorded_proof_does_not_pass_again() -> None:
    async def main() -> None:
        lis = Listener()
        await lis.media.start()
        token = lis.media.token.encode()
        sent, got = await recording_handshake(lis)
        wire = b"".join(sent + got)
        assert token not in wire and token.hex().encode() not in wire, "the token crossed the socket"
        # A neighbour who recorded that handshake replays the page's frames on a new connection.
        reader, writer = await asyncio.open_connection("127.0.0.1", lis.media.port)
        assert await read_frame(reader) == MAGIC
        assert hs.read_field(await read_frame(reader), hs.NONCE) not in (
            None,
            hs.read_field(got[1], hs.NONCE),
        )
        writer.write(framed(sent[0]))
        assert hs.read_field(await read_frame(reader), hs.PROOF) is not None
        writer.write(framed(sent[1]) + framed(b"\x03"))
        assert await read_frame(reader) is None, "a replayed proof was taken"
        writer.close()
        assert lis.events == ["live", "lost"] and lis.messages == []
        lis.media.close()

    asyncio.run(main())


def test_a_flood_of_silent_connections_keeps_few_descriptors_and_lets_the_page_in(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tries: list[int] = []

    async def page_goes_live(lis: Listener) -> bool:
        """The page, while the flood goes on: its nonce as soon as it connects (as the real page
        does); a few tries, since under a flood a connection can lose its place."""
        token, port = lis.media.token, lis.media.port
        for attempt in range(1, 6):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            nonce_p = hs.new_nonce()
            writer.write(framed(hs.nonce_frame(nonce_p)))
            try:
                if await read_frame(reader) != MAGIC:
                    continue
                nonce_k = hs.read_field(await read_frame(reader), hs.NONCE)
                proof = hs.read_field(await read_frame(reader), hs.PROOF)
                if nonce_k is None or proof != hs.kernel_proof(token, port, nonce_p, nonce_k):
                    continue
                writer.write(framed(hs.proof_frame(hs.page_proof(token, port, nonce_k, nonce_p))))
                if await read_frame(reader) == bytes([READY]):
                    tries.append(attempt)
                    return True
            finally:
                writer.close()
        return False

    async def main() -> None:
        lis = Listener()
        port = await lis.media.start()
        before = open_fds()
        peak = before
        flood = await asyncio.create_subprocess_exec(
            sys.executable, "-c", FLOODER, str(port), str(FLOOD),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert flood.stdin is not None and flood.stdout is not None

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, open_fds())
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample())
        try:
            async with asyncio.timeout(FLOOD_S):
                assert int(await flood.stdout.readline()) == FLOOD // 2
                live = await page_goes_live(lis)  # the flood's second half is on its way
                assert int(await flood.stdout.readline()) == FLOOD
                await asyncio.sleep(0.5)  # every connection is open on the attacker's side
                peak = max(peak, open_fds())
        finally:
            sampler.cancel()
            flood.stdin.close()
            await flood.wait()
        assert live, "the page did not get in during the flood"
        # MAX_PENDING handshakes, the page's connection, and the accept batches in flight (asyncio
        # accepts up to BACKLOG at once before the first of them runs; an aborted one's descriptor
        # closes on the loop's next turn): whatever the flood's size. Plus this test's own, opened
        # after `before` in this process: the flooder's two pipes and the page's end of its socket.
        bound = MAX_PENDING + 1 + 3 * BACKLOG + TEST_OWN_FDS
        assert peak - before <= bound, f"{peak - before} more descriptors during the flood (at most {bound})"
        lis.media.close()

    with caplog.at_level(logging.DEBUG, logger="decart_nb"):
        started = time.monotonic()
        asyncio.run(main())
    lines = warnings_of(caplog)
    assert len(lines) <= 2, lines[:5]
    assert any("refused" in line for line in lines), lines
    assert time.monotonic() - started < FLOOD_S
    print(f"the page went live on try {tries}")


def test_a_slow_peer_is_closed_at_the_handshakes_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    deadline = 1.5
    monkeypatch.setattr(media_socket, "MEDIA_HELLO_TIMEOUT_S", deadline)

    async def main() -> None:
        lis = Listener()
        await lis.media.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", lis.media.port)
        started = time.monotonic()
        assert await read_frame(reader) == MAGIC
        assert await read_frame(reader) is not None  # the kernel's nonce
        # A valid-looking nonce frame, one byte every 0.5 s (it would take 18 s).
        closed_at = None
        for byte in framed(hs.nonce_frame(hs.new_nonce())):
            try:
                writer.write(bytes([byte]))
                await writer.drain()
                if await asyncio.wait_for(reader.read(1), 0.5) == b"":  # the kernel closed
                    closed_at = time.monotonic() - started
                    break
            except TimeoutError:
                continue  # still open: the next byte
            except ConnectionError:
                closed_at = time.monotonic() - started
                break
        assert closed_at is not None, "the slow peer was never closed"
        assert deadline - 0.1 <= closed_at < deadline + 1.5, f"closed {closed_at:.1f} s after the accept"
        writer.close()
        assert lis.events == []
        lis.media.close()

    asyncio.run(main())


def test_malformed_frames_with_the_token_log_a_bounded_number_of_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    junk = [b"", b"\x09junk", b"\x00", b"\x01\x01\x00", b"\x03\x03", bytes([media_socket.MESSAGE]) + b"{no"]

    async def main() -> None:
        lis = Listener()
        await lis.media.start()
        for _ in range(30):  # a peer with the token reconnects and floods, again and again
            reader, writer = await asyncio.open_connection("127.0.0.1", lis.media.port)
            assert await read_frame(reader) == MAGIC
            nonce_k = hs.read_field(await read_frame(reader), hs.NONCE)
            assert nonce_k is not None
            assert await page_handshake(reader, writer, lis.media.token, lis.media.port, nonce_k)
            writer.write(b"".join(framed(j) for j in junk * 50))
            writer.write(framed(b"\x03"))
            await writer.drain()
            for _ in range(200):
                if lis.messages:
                    break
                await asyncio.sleep(0.01)
            assert lis.messages == [({"type": "keyframe"}, b"")], "the link did not live on"
            lis.messages.clear()
            writer.close()
        lis.media.close()

    with caplog.at_level(logging.WARNING, logger="decart_nb"):
        asyncio.run(main())
    lines = warnings_of(caplog)
    assert 1 <= len(lines) <= 2, lines[:5]
    # Counted, not dropped in silence: the lines add up to every malformed frame sent.
    counted = sum(int(n) for line in lines for n in re.findall(r"(\d+) malformed frames dropped", line))
    assert counted == 30 * 50 * len(junk), lines
    counted = sum(int(n) for n in re.findall(r"(\d+) malformed frames dropped", " ".join(lines)))
    assert counted == 30 * 50 * len(junk), lines  # the first at once, the rest in the close's line


def test_the_token_is_in_no_log_line_and_no_repr(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> MediaSocket:
        lis = Listener()
        await lis.media.start()
        await recording_handshake(lis)
        reader, writer = await asyncio.open_connection("127.0.0.1", lis.media.port)
        writer.write(framed(lis.media.token.encode()))  # the old hello: refused, and logged
        assert await read_frame(reader) == MAGIC
        writer.close()
        for _ in range(200):
            if any("refused" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.01)
        lis.media.close()
        return lis.media

    with caplog.at_level(logging.DEBUG):
        media = asyncio.run(main())
    assert any("refused" in r.getMessage() for r in caplog.records)
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text}" for r in caplog.records)
    assert media.token not in logged
    assert media.token not in repr(media) and media.token not in str(media)
