"""The kernel's WebRTC peer against a neighbour on the host (docs/security.md, "WebRTC peer").

The kernel's aiortc peer listens on UDP host candidates that anyone on the host can send to. ICE
answers only a binding request signed with the password from the answer (which travels over the
comm or the page socket, never in the clear), and DTLS takes only the certificate whose fingerprint
the page offered: a neighbour who sends STUN, DTLS, RTP or junk to those ports gets no success
response and no media, and the page's stream goes on. Each test first shows that the probe does see
a success response when it holds the right password, so a test that passes is no deaf listener.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import struct

import pytest
from aioice import stun

from decart_nb import Session
from decart_nb.media.sources import PatternTrack
from tests.helpers import wait_until
from tests.rtc_client import BrowserPeer

pytestmark = pytest.mark.webrtc

_CANDIDATE = re.compile(r"a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ host", re.IGNORECASE)


def _ice(sdp: str) -> tuple[str, str, list[tuple[str, int]]]:
    """The answer's ICE username fragment, password and UDP host candidates."""
    ufrag = re.search(r"a=ice-ufrag:(\S+)", sdp)
    pwd = re.search(r"a=ice-pwd:(\S+)", sdp)
    assert ufrag and pwd
    candidates = [(host, int(port)) for host, port in _CANDIDATE.findall(sdp) if ":" not in host]
    assert candidates, sdp
    return ufrag.group(1), pwd.group(1), candidates


def _binding_request(username: str, password: str) -> bytes:
    request = stun.Message(
        message_method=stun.Method.BINDING,
        message_class=stun.Class.REQUEST,
        attributes={"USERNAME": username, "PRIORITY": 1, "ICE-CONTROLLING": 1},
    )
    request.add_message_integrity(password.encode())
    request.add_fingerprint()
    return bytes(request)


def _junk(n: int) -> list[bytes]:
    """What a neighbour might throw at a media port: a DTLS ClientHello-shaped record, RTP and RTCP
    headers with made-up SSRCs, and random bytes."""
    out = []
    for i in range(n):
        body = os.urandom(64 + i % 200)
        out.append(bytes([22, 0xFE, 0xFD]) + bytes(8) + struct.pack(">H", len(body)) + body)  # DTLS
        out.append(struct.pack(">BBHII", 0x80, 96, i, i * 3000, 0xDEAD0000 + i) + body)  # RTP
        out.append(struct.pack(">BBHI", 0x80, 200, 6, 0xBEEF0000 + i) + body[:24])  # RTCP SR
        out.append(body)
    return out


def _success_responses(sock: socket.socket) -> int:
    """How many STUN success responses the probe received (and that nothing else came: no media)."""
    successes = 0
    sock.settimeout(0.5)
    while True:
        try:
            data, _ = sock.recvfrom(65536)
        except TimeoutError:
            return successes
        message = stun.parse_message(data)  # anything but STUN (media, DTLS) fails the test here
        successes += message.message_class == stun.Class.RESPONSE


def test_a_neighbour_cannot_talk_ice_or_inject_media_and_the_stream_goes_on() -> None:
    session = Session(source="camera", prompt="noir")
    peer = BrowserPeer(send=PatternTrack(640, 360, 30))
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))

    async def scenario() -> None:
        session.connect()
        await peer.connect(session)
        await peer.wait_frames(10)
        ufrag, pwd, candidates = _ice(peer.pc.remoteDescription.sdp)
        page_ufrag = _ice(peer.pc.localDescription.sdp)[0]
        username = f"{ufrag}:{page_ufrag}"  # ICE checks the pair of fragments, then the password

        # The control: with the answer's password the kernel does answer the probe.
        for address in candidates:
            probe.sendto(_binding_request(username, pwd), address)
        assert await asyncio.to_thread(_success_responses, probe) >= 1

        # The neighbour knows the ports and even both username fragments, not the password.
        for address in candidates:
            for guess in ("", "0" * 22, pwd[::-1]):
                probe.sendto(_binding_request(username, guess), address)
            for packet in _junk(100):
                probe.sendto(packet, address)
        assert await asyncio.to_thread(_success_responses, probe) == 0

        before = len(peer.frames)
        await peer.wait_frames(before + 20)  # the page's stream is untouched
        assert session.state == "generating"
        await asyncio.to_thread(session.disconnect)
        await peer.close()

    try:
        asyncio.run(scenario())
    finally:
        probe.close()
        session.disconnect()
    assert wait_until(lambda: session.state == "disconnected")
