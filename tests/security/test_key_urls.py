"""Attack: make the kernel send the Decart key (or a token) in clear text, to be read on the way.

Every URL that carries the key or a token is https:// or wss://; http:// and ws:// are allowed to
this machine only (127.0.0.0/8, ::1, localhost: the tests' fakes). A plain-text URL to any other
host is INVALID_BASE_URL naming its scheme and host (never the rest: it may hold the key), raised
before anything connects. Entry points: tokens.create (argument and DECART_API_BASE_URL), the
Decart engine (argument, engine_options and DECART_REALTIME_BASE_URL), the viewer and watch(),
and the TURN helpers (which refused plain text already; their message now names no secret).
What stays allowed (loopback, https/wss) is tested in tests/test_decart_tools.py."""

from __future__ import annotations

from typing import Any

import pytest

import decart_nb
from decart_nb import DecartNBError, ErrorCode, Session, turn

pytest.importorskip("decart", reason='needs pip install "decart_nb[decart]"')

KEY = "dct_plain_text_key_77a0e1"
PLAIN_WS = "ws://decart.example.org"
PLAIN_HTTP = "http://api.example.org"


@pytest.fixture(autouse=True)
def key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECART_API_KEY", KEY)
    monkeypatch.delenv("DECART_REALTIME_BASE_URL", raising=False)
    monkeypatch.delenv("DECART_API_BASE_URL", raising=False)


@pytest.fixture
def no_client(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Decart's HTTP client, replaced: a made client means a request was about to go out."""
    import decart

    made: list[dict[str, Any]] = []

    def client(**kwargs: Any) -> None:
        made.append(kwargs)
        raise AssertionError("a client was made for a plain-text URL")

    monkeypatch.setattr(decart, "DecartClient", client)
    return made


def refused(call: Any, scheme_host: str) -> DecartNBError:
    with pytest.raises(DecartNBError) as info:
        call()
    error = info.value
    assert error.code == ErrorCode.INVALID_BASE_URL, error
    assert scheme_host in error.message and KEY not in str(error) + repr(error.data)
    return error


# -- client tokens (POST /v1/client/tokens with the key in a header) ----------------------------------
def test_tokens_refuse_a_plain_http_base_url(no_client: list[dict[str, Any]]) -> None:
    refused(lambda: decart_nb.tokens.create(base_url=PLAIN_HTTP), "http://api.example.org")
    assert no_client == []


def test_tokens_refuse_a_plain_http_base_url_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, no_client: list[dict[str, Any]]
) -> None:
    monkeypatch.setenv("DECART_API_BASE_URL", "http://10.1.2.3:8080/")
    refused(decart_nb.tokens.create, "http://10.1.2.3")
    assert no_client == []


# -- the realtime engine (the key rides in the control channel's query) -------------------------------
def test_the_engine_refuses_a_plain_ws_base_url() -> None:
    from decart_nb.engines.decart import DecartEngine

    refused(lambda: DecartEngine(base_url=PLAIN_WS), "ws://decart.example.org")


def test_a_session_refuses_a_plain_ws_base_url_option() -> None:
    options = {"base_url": "ws://192.168.1.20:9000"}
    refused(lambda: Session(engine="decart", source="pattern", engine_options=options), "ws://192.168.1.20")


def test_a_session_refuses_a_plain_ws_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECART_REALTIME_BASE_URL", PLAIN_WS)
    refused(lambda: Session(engine="decart", source="pattern"), "ws://decart.example.org")


# -- the viewer (its key goes to the same host, over http(s) for the watch credentials) ----------------
def test_the_viewer_refuses_a_plain_ws_base_url() -> None:
    from decart_nb.engines.decart import DecartViewer

    refused(lambda: DecartViewer("dG9rZW4=", base_url=PLAIN_WS), "ws://decart.example.org")


def test_watch_refuses_a_plain_ws_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECART_REALTIME_BASE_URL", "ws://[2001:db8::1]:9000")
    refused(lambda: decart_nb.watch("dG9rZW4="), "ws://2001:db8::1")


# -- what the refusal says ---------------------------------------------------------------------------
def test_a_key_inside_the_url_is_never_in_the_message() -> None:
    from decart_nb.engines.decart import DecartEngine

    url = f"ws://{KEY}:x@decart.example.org/v1?api_key={KEY}"
    error = refused(lambda: DecartEngine(base_url=url), "ws://decart.example.org")
    assert error.data == {"scheme": "ws", "host": "decart.example.org"}


def test_a_turn_secret_inside_the_url_is_never_in_the_message() -> None:
    url = f"http://key-id:{KEY}@turn.example.org"
    refused(lambda: turn.cloudflare("key-id", "token", base_url=url), "http://turn.example.org")


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1.example.org",  # a name that starts like loopback
        "localhost.example.org",
        "0x7f000001",  # not an address ipaddress reads: refused, not resolved
        "2130706433",
        "[::ffff:127.0.0.1]",  # IPv4-mapped: not loopback to this check
        "0.0.0.0",
    ],
)
def test_look_alike_loopback_hosts_are_not_loopback(host: str) -> None:
    from decart_nb.engines.decart import DecartEngine

    with pytest.raises(DecartNBError) as info:
        DecartEngine(base_url=f"ws://{host}:9000")
    assert info.value.code == ErrorCode.INVALID_BASE_URL and "plain text" in info.value.message
