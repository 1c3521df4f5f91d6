"""decart_nb.tokens.create() against the fake Decart server, and decart_nb.diagnose() pointed at
127.0.0.1 (these tests never reach beyond loopback; they run in the loopback-only namespace)."""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

import decart_nb
from decart_nb import DecartNBError, ErrorCode, Session, _loop
from decart_nb.secure_url import HTTP, WEBSOCKET, check_secret_url
from tests.fakes.decart_server import VALID_KEY, FakeDecartServer, stub_livekit_room
from tests.security.test_api_key import WRONG_KEY, assert_no_secret

pytest.importorskip("decart", reason='needs pip install "decart_nb[decart]"')
pytestmark = pytest.mark.webrtc


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDecartServer]:
    _loop.acquire()
    fake = _loop.run(FakeDecartServer().start(), timeout=10)
    monkeypatch.setenv("DECART_API_BASE_URL", f"http://127.0.0.1:{fake.port}")
    monkeypatch.setenv("DECART_API_KEY", VALID_KEY)
    try:
        yield fake
    finally:
        _loop.run(fake.close(), timeout=10)
        _loop.release()


# -- client tokens ------------------------------------------------------------------------------
def test_a_client_token_from_the_kernels_key(
    server: FakeDecartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    made = decart_nb.tokens.create(
        expires_in=120,
        allowed_origins=["https://example.org"],
        allowed_models=["lucy-2.1"],
        max_session_duration=300,
    )
    assert made.api_key.startswith("ek_") and made.token and made.expires_at
    assert server.token_requests == [
        {
            "expiresIn": 120,
            "allowedOrigins": ["https://example.org"],
            "allowedModels": ["lucy-2.1"],
            "constraints": {"realtime": {"maxSessionDuration": 300}},
        }
    ]
    (request,) = server.http
    assert request["headers"]["X-API-KEY"] == VALID_KEY  # the permanent key goes to Decart only
    assert VALID_KEY not in repr(made) and VALID_KEY not in caplog.text


def test_a_client_token_opens_a_session_and_a_viewer(
    server: FakeDecartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end through the real SDK: a token minted by tokens.create() is the key of a session
    in another kernel (here: the same one, without DECART_API_KEY) and of a viewer of it."""
    made = decart_nb.tokens.create(expires_in=300, allowed_models=["lucy-2.1"])
    monkeypatch.delenv("DECART_API_KEY")
    monkeypatch.setenv("DECART_REALTIME_BASE_URL", server.url)
    with (
        stub_livekit_room(server),
        Session(
            engine="decart", source="pattern", model="lucy-2.1", prompt="anime", api_key=made.api_key
        ) as host,
    ):
        assert server.current.query["api_key"] == made.api_key
        token = host.engine.subscribe_token  # type: ignore[attr-defined]
        viewer = decart_nb.watch(token, api_key=made.api_key, model="lucy-2.1")
        try:
            assert viewer.state == "connected" and np.asarray(viewer.snapshot(timeout=10)).size
        finally:
            viewer.disconnect()
    (watched,) = [r for r in server.http if r["path"].startswith("/watch-stream/")]
    assert watched["headers"]["x-api-key"] == made.api_key


def test_a_refused_token_is_token_create_error_without_the_key(server: FakeDecartServer) -> None:
    server.script.valid_keys = set()
    with pytest.raises(DecartNBError) as info:
        decart_nb.tokens.create()
    assert info.value.code == ErrorCode.TOKEN_CREATE_ERROR and "401" in info.value.message
    assert (
        VALID_KEY not in str(info.value) and info.value.__cause__ is None and info.value.__context__ is None
    )


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"expires_in": 0}, ErrorCode.INVALID_INPUT),
        ({"expires_in": 3601}, ErrorCode.INVALID_INPUT),
        ({"allowed_origins": "https://example.org"}, ErrorCode.INVALID_INPUT),
        ({"base_url": "ftp://example.org"}, ErrorCode.INVALID_BASE_URL),
        ({"api_key": " "}, ErrorCode.INVALID_API_KEY),
    ],
)
def test_token_arguments_are_checked_before_any_request(
    server: FakeDecartServer, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, object], code: str
) -> None:
    monkeypatch.delenv("DECART_API_KEY")
    kwargs = {"api_key": VALID_KEY} | kwargs
    with pytest.raises(DecartNBError) as info:
        decart_nb.tokens.create(**kwargs)  # type: ignore[arg-type]
    assert info.value.code == code and server.http == []


# -- errors that held no key before issue 19 either: kept that way ------------------------------------
@pytest.fixture
def live_server(server: FakeDecartServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDecartServer]:
    monkeypatch.setenv("DECART_REALTIME_BASE_URL", server.url)
    with stub_livekit_room(server):
        yield server


def test_set_failures_and_a_refused_upgrade_hold_no_key(
    live_server: FakeDecartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK's frames behind a rejected set()/set_image hold no key, and a 401 at the upgrade
    quotes the URL (redacted); read through every surface of tests/security/test_api_key.py."""
    live_server.script.rejections = {"forbidden": "Prompt rejected: forbidden content"}
    red = Image.fromarray(np.full((48, 64, 3), (200, 40, 40), np.uint8))
    errors = []
    with Session(engine="decart", source="pattern", model="lucy-2.1") as s:
        for call in (lambda: s.set_prompt("forbidden words"), lambda: s.set(prompt="forbidden", image=red)):
            with pytest.raises(DecartNBError) as info:
                call()
            errors.append(info.value)
    monkeypatch.setenv("DECART_API_KEY", WRONG_KEY)
    with pytest.raises(DecartNBError) as refused:
        Session(engine="decart", source="pattern", model="lucy-2.1").connect()
    assert "api_key=***" in refused.value.message
    for error in [*errors, refused.value]:
        assert_no_secret(error)
    assert [e.code for e in errors] == [ErrorCode.WEBRTC_SERVER_ERROR] * 2


# -- key-bearing URLs: what stays allowed (the refusals: tests/security/test_key_urls.py) -------------
@pytest.mark.parametrize(
    "url",
    [
        "ws://127.0.0.1:9000",
        "ws://127.5.6.7:9000/",
        "ws://localhost:9000",
        "ws://[::1]:9000",
        "wss://decart.example.org",
    ],
)
def test_loopback_and_encrypted_realtime_urls_are_accepted(url: str) -> None:
    from decart_nb.engines.decart import DecartEngine

    assert DecartEngine(VALID_KEY, base_url=url).base_url == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://LOCALHOST:8080", "https://api.example.org"])
def test_loopback_and_encrypted_api_urls_are_accepted(url: str) -> None:
    assert check_secret_url(url, HTTP, "API base URL") == url
    assert check_secret_url(url.replace("http", "ws", 1), WEBSOCKET, "base URL")


# -- diagnose -----------------------------------------------------------------------------------
class StunResponder:
    """A UDP STUN server on loopback that answers binding requests (as Decart's TURN server would)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            request, peer = self.sock.recvfrom(2048)
        except OSError:
            return  # closed before a request came
        header = struct.pack(">HHI", 0x0101, 0, 0x2112A442) + request[8:20]
        self.sock.sendto(header, peer)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


def loopback(names: tuple[str, ...] = ("api", "signalling", "platform", "turn", "media")) -> dict[str, str]:
    return dict.fromkeys(names, "127.0.0.1")


def test_diagnose_all_reachable(server: FakeDecartServer) -> None:
    stun = StunResponder()
    try:
        result = decart_nb.diagnose(loopback(), https_port=server.port, stun_port=stun.port, timeout=5)
    finally:
        stun.close()
    verdicts = {c.name: c.verdict for c in result.checks}
    assert verdicts["TCP 443 API"] == verdicts["TCP 443 signalling"] == verdicts["UDP STUN/TURN"] == "ok"
    assert verdicts["DNS api"] == "ok" and verdicts["UDP 7882 media"] == "untested"
    assert verdicts["API key"] == "ok" and VALID_KEY not in str(result) + repr(result) + result._repr_html_()
    assert result.ok and "reachable" in result.summary


def test_diagnose_blocked_udp_and_closed_ports(server: FakeDecartServer) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]  # bound, never listening: connections are refused
    try:
        result = decart_nb.diagnose(loopback(), https_port=port, stun_port=port, timeout=2)
    finally:
        closed.close()
    failed = {c.name for c in result.checks if c.verdict == "failed"}
    assert {"TCP 443 API", "TCP 443 signalling", "UDP STUN/TURN"} <= failed
    assert not result.ok and "failed" in result.summary
    only_udp = decart_nb.diagnose(loopback(), https_port=server.port, stun_port=port, timeout=2)
    assert "UDP is blocked" in only_udp.summary


def test_diagnose_offline_answers_quickly_and_plainly() -> None:
    hosts = {role: f"{role}.decart.invalid" for role in ("api", "signalling", "platform", "turn", "media")}
    start = time.monotonic()
    result = decart_nb.diagnose(hosts, timeout=2)
    assert time.monotonic() - start < 15
    assert result.summary.startswith("Offline") and not result.ok
    assert all(c.verdict in ("failed", "untested") for c in result.checks if c.name != "API key")
    assert json.dumps([c.detail for c in result.checks])  # plain text
