"""TURN credential helpers (decart_nb.turn): coturn's shared-secret scheme against a value computed
elsewhere, the hosted providers against a fake HTTP server on 127.0.0.1 (no test reaches a
provider), their errors, and the secret staying in the kernel when a Session uses the result."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiortc.rtcicetransport import connection_kwargs

from decart_nb import DecartNBError, ErrorCode, Session, turn
from tests.test_widget import RecordingComm, comm_of, comms

# A fixture shared with tests/test_widget.py (the widget's comms, recorded).
__all__ = ["comms"]

CLOCK = 1_700_000_000.0
SECRET = "north-wind-secret"
CF_TOKEN = "cf-api-token-DO-NOT-SHIP-7731"
TW_TOKEN = "tw-auth-token-DO-NOT-SHIP-5150"
TW_SID = "AC" + "0123456789abcdef" * 2


# -- a fake provider on loopback ---------------------------------------------------------------------
@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeProvider:
    """Answers every request with `status` and `answer` (a dict is sent as JSON), after `delay` s."""

    url: str = ""
    status: int = 201
    answer: Any = field(default_factory=dict)
    delay: float = 0.0
    location: str = ""
    seen: list[Seen] = field(default_factory=list)


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            fake.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
            time.sleep(fake.delay)
            reply = fake.answer if isinstance(fake.answer, bytes) else json.dumps(fake.answer).encode()
            self.send_response(fake.status)
            if fake.location:
                self.send_header("Location", fake.location)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        do_GET = do_POST  # a followed redirect would arrive as a GET

        def log_message(self, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fake-turn-provider", daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(turn.time, "time", lambda: CLOCK)
    return CLOCK


def cloudflare_answer(username: str = "cf-user-1", credential: str = "cf-cred-1") -> dict[str, Any]:
    """The shape of developers.cloudflare.com's generate-ice-servers example."""
    return {
        "iceServers": [
            {"urls": ["stun:stun.cloudflare.com:3478", "stun:stun.cloudflare.com:53"]},
            {
                "urls": [
                    "turn:turn.cloudflare.com:3478?transport=udp",
                    "turn:turn.cloudflare.com:3478?transport=tcp",
                    "turns:turn.cloudflare.com:5349?transport=tcp",
                ],
                "username": username,
                "credential": credential,
            },
        ]
    }


def twilio_answer(username: str = "tw-user-1", password: str = "tw-pass-1") -> dict[str, Any]:
    """The shape of twilio.com's Tokens.json example (with the older "url" beside "urls")."""
    turn_entry = {"username": username, "credential": password}
    return {
        "account_sid": TW_SID,
        "ttl": "3600",
        "username": username,
        "password": password,
        "date_created": "Fri, 01 May 2020 01:42:57 +0000",
        "ice_servers": [
            {"url": "stun:global.stun.twilio.com:3478", "urls": "stun:global.stun.twilio.com:3478"},
            {"urls": "turn:global.turn.twilio.com:3478?transport=udp", **turn_entry},
            {"url": "turn:global.turn.twilio.com:443?transport=tcp", **turn_entry},
        ],
    }


def raises(code: str, call: Any, *args: Any, **kwargs: Any) -> DecartNBError:
    with pytest.raises(DecartNBError) as info:
        call(*args, **kwargs)
    assert info.value.code == code, info.value
    return info.value


# -- static and coturn ---------------------------------------------------------------------------------
def test_a_static_turn_server_is_one_ice_server_dict() -> None:
    got = turn.turn_server("turn:turn.example.org:3478", "alice", "pw")
    assert got == [{"urls": ["turn:turn.example.org:3478"], "username": "alice", "credential": "pw"}]
    both = turn.turn_server(["turn:a.example:3478", "turns:a.example:5349"], "alice", "pw")
    assert both[0]["urls"] == ["turn:a.example:3478", "turns:a.example:5349"]


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (("stun:stun.example.org:3478", "u", "p"), "urls"),
        (([], "u", "p"), "urls"),
        (("turn:t.example:3478", "", "p"), "username"),
        (("turn:t.example:3478", "u", None), "credential"),
    ],
)
def test_a_static_turn_server_checks_its_arguments(args: tuple[Any, ...], argument: str) -> None:
    error = raises(ErrorCode.INVALID_INPUT, turn.turn_server, *args)
    assert error.data["argument"] == argument


def test_coturn_credentials_match_the_rest_api_formula(fixed_clock: float) -> None:
    got = turn.coturn("turn:turn.example.org:3478", SECRET, user="alice", ttl=3600)
    assert got[0]["urls"] == ["turn:turn.example.org:3478"]
    assert got[0]["username"] == "1700003600:alice"  # expiry = clock + ttl, then ":" and the user
    # Computed outside Python:
    # printf '%s' 1700003600:alice | openssl dgst -sha1 -hmac <secret> -binary | base64
    assert got[0]["credential"] == "Ev9WJy6IiNjALah9jF2ImB4FP0Y="
    # ... and the formula itself on the default user and ttl (24 h).
    default = turn.coturn(["turn:t.example:3478"], SECRET)[0]
    assert default["username"] == f"{int(fixed_clock) + 86400}:decart_nb"
    mac = hmac.new(SECRET.encode(), default["username"].encode(), hashlib.sha1).digest()
    assert default["credential"] == base64.b64encode(mac).decode() == "gAiS7JEzpZ/IN4GGU/FAlINOviM="


def test_coturn_credentials_move_with_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(turn.time, "time", lambda: CLOCK)
    first = turn.coturn("turn:t.example:3478", SECRET, ttl=60)[0]
    monkeypatch.setattr(turn.time, "time", lambda: CLOCK + 10)
    later = turn.coturn("turn:t.example:3478", SECRET, ttl=60)[0]
    assert later["username"] != first["username"] and later["credential"] != first["credential"]
    assert turn.coturn("turn:t.example:3478", SECRET, user="", ttl=60)[0]["username"] == str(int(CLOCK + 70))


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"secret": ""}, "secret"),
        ({"secret": None}, "secret"),
        ({"secret": SECRET, "ttl": 0}, "ttl"),
        ({"secret": SECRET, "user": "a:b"}, "user"),
        ({"secret": SECRET, "urls": "http://t.example"}, "urls"),
    ],
)
def test_coturn_checks_its_arguments(kwargs: dict[str, Any], argument: str) -> None:
    call = {"urls": "turn:t.example:3478"} | kwargs
    error = raises(ErrorCode.INVALID_INPUT, turn.coturn, **call)
    assert error.data.get("argument") == argument, error


# -- Cloudflare ------------------------------------------------------------------------------------------
def test_cloudflare_asks_for_credentials_and_reads_the_ice_servers(provider: FakeProvider) -> None:
    provider.answer = cloudflare_answer()
    got = turn.cloudflare("key-1234", CF_TOKEN, ttl=7200, base_url=provider.url)
    (seen,) = provider.seen
    assert seen.method == "POST"
    assert seen.path == "/v1/turn/keys/key-1234/credentials/generate-ice-servers"
    assert seen.headers["Authorization"] == f"Bearer {CF_TOKEN}"
    assert seen.headers["Content-Type"] == "application/json"
    assert json.loads(seen.body) == {"ttl": 7200}
    assert got[0] == {"urls": ["stun:stun.cloudflare.com:3478", "stun:stun.cloudflare.com:53"]}
    assert got[1]["urls"][0] == "turn:turn.cloudflare.com:3478?transport=udp"
    assert (got[1]["username"], got[1]["credential"]) == ("cf-user-1", "cf-cred-1")


def test_cloudflare_reads_the_older_single_object_answer(provider: FakeProvider) -> None:
    provider.answer = {
        "iceServers": {"urls": ["turn:turn.cloudflare.com:3478"], "username": "u", "credential": "c"}
    }
    got = turn.cloudflare("key-1", CF_TOKEN, base_url=provider.url)
    assert got == [{"urls": ["turn:turn.cloudflare.com:3478"], "username": "u", "credential": "c"}]


def test_cloudflare_takes_the_key_from_the_environment(
    provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider.answer = cloudflare_answer()
    monkeypatch.setenv(turn.CLOUDFLARE_KEY_ID_ENV, "env-key")
    monkeypatch.setenv(turn.CLOUDFLARE_TOKEN_ENV, CF_TOKEN)
    turn.cloudflare(base_url=provider.url)
    assert provider.seen[0].path.startswith("/v1/turn/keys/env-key/")
    assert provider.seen[0].headers["Authorization"] == f"Bearer {CF_TOKEN}"
    assert json.loads(provider.seen[0].body) == {"ttl": 86400}


def test_a_missing_cloudflare_secret_is_invalid_input_before_any_request(
    provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(turn.CLOUDFLARE_TOKEN_ENV, raising=False)
    error = raises(ErrorCode.INVALID_INPUT, turn.cloudflare, "key-1", base_url=provider.url)
    assert turn.CLOUDFLARE_TOKEN_ENV in error.message and error.data["argument"] == "api_token"
    raises(ErrorCode.INVALID_INPUT, turn.cloudflare, "key-1", "  ", base_url=provider.url)
    raises(ErrorCode.INVALID_INPUT, turn.cloudflare, "key-1", CF_TOKEN, ttl=3 * 86400, base_url=provider.url)
    assert provider.seen == []


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_is_invalid_api_key_without_the_token(provider: FakeProvider, status: int) -> None:
    provider.status = status
    provider.answer = {"error": f"token {CF_TOKEN} is not valid"}  # a provider echoing the secret
    error = raises(ErrorCode.INVALID_API_KEY, turn.cloudflare, "key-1", CF_TOKEN, base_url=provider.url)
    assert f"HTTP {status}" in error.message and "Cloudflare" in error.message
    assert "is not valid" in error.message  # the provider's reason is kept ...
    assert CF_TOKEN not in str(error) and CF_TOKEN not in json.dumps(error.to_dict())  # ... its secret not
    assert error.__cause__ is None and error.__context__ is None


def test_other_provider_failures_are_token_create_errors(provider: FakeProvider) -> None:
    provider.status, provider.answer = 400, {"message": "ttl too long"}
    error = raises(ErrorCode.TOKEN_CREATE_ERROR, turn.cloudflare, "k", CF_TOKEN, base_url=provider.url)
    assert "HTTP 400" in error.message and "ttl too long" in error.message
    provider.status, provider.answer = 201, b"<html>not json</html>"
    raises(ErrorCode.TOKEN_CREATE_ERROR, turn.cloudflare, "k", CF_TOKEN, base_url=provider.url)
    provider.answer = {"iceServers": [{"urls": ["stun:stun.example:3478"]}]}  # nothing to relay through
    error = raises(ErrorCode.TOKEN_CREATE_ERROR, turn.cloudflare, "k", CF_TOKEN, base_url=provider.url)
    assert "turn:" in error.message
    provider.answer = {"result": "ok"}
    raises(ErrorCode.TOKEN_CREATE_ERROR, turn.cloudflare, "k", CF_TOKEN, base_url=provider.url)


def test_a_redirect_is_not_followed_with_the_token(provider: FakeProvider) -> None:
    provider.status, provider.location = 302, f"{provider.url}/elsewhere"  # urllib follows a 302 as GET
    raises(ErrorCode.TOKEN_CREATE_ERROR, turn.cloudflare, "k", CF_TOKEN, base_url=provider.url)
    assert [s.path for s in provider.seen] == ["/v1/turn/keys/k/credentials/generate-ice-servers"]


def test_a_slow_provider_times_out(provider: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(turn, "TURN_TIMEOUT_S", 0.3)
    provider.delay, provider.answer = 1.5, cloudflare_answer()
    start = time.monotonic()
    error = raises(ErrorCode.TOKEN_CREATE_ERROR, turn.cloudflare, "k", CF_TOKEN, base_url=provider.url)
    assert time.monotonic() - start < 1.4
    assert "did not answer within 0.3 s" in error.message and CF_TOKEN not in error.message


def test_an_unreachable_provider_is_a_token_create_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    error = raises(
        ErrorCode.TOKEN_CREATE_ERROR, turn.cloudflare, "k", CF_TOKEN, base_url=f"http://127.0.0.1:{port}"
    )
    assert "could not be reached" in error.message and CF_TOKEN not in error.message


@pytest.mark.parametrize("base_url", ["http://turn-keys.example.org", "ftp://127.0.0.1", "rtc.example", ""])
def test_a_secret_goes_only_over_https_or_to_this_machine(base_url: str) -> None:
    raises(ErrorCode.INVALID_BASE_URL, turn.cloudflare, "k", CF_TOKEN, base_url=base_url)


# -- Twilio --------------------------------------------------------------------------------------------
def test_twilio_asks_for_a_token_and_reads_the_ice_servers(provider: FakeProvider) -> None:
    provider.answer = twilio_answer()
    got = turn.twilio(TW_SID, TW_TOKEN, ttl=3600, base_url=provider.url)
    (seen,) = provider.seen
    assert seen.method == "POST" and seen.path == f"/2010-04-01/Accounts/{TW_SID}/Tokens.json"
    assert (
        seen.headers["Authorization"] == "Basic " + base64.b64encode(f"{TW_SID}:{TW_TOKEN}".encode()).decode()
    )
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert seen.body == b"Ttl=3600"
    assert got == [
        {"urls": ["stun:global.stun.twilio.com:3478"]},
        {
            "urls": ["turn:global.turn.twilio.com:3478?transport=udp"],
            "username": "tw-user-1",
            "credential": "tw-pass-1",
        },
        {
            "urls": ["turn:global.turn.twilio.com:443?transport=tcp"],
            "username": "tw-user-1",
            "credential": "tw-pass-1",
        },
    ]


def test_twilio_with_an_api_key_logs_in_with_the_key(provider: FakeProvider) -> None:
    provider.answer = twilio_answer()
    turn.twilio(TW_SID, TW_TOKEN, api_key_sid="SK-key", base_url=provider.url)
    expected = base64.b64encode(f"SK-key:{TW_TOKEN}".encode()).decode()
    assert provider.seen[0].headers["Authorization"] == f"Basic {expected}"
    assert provider.seen[0].path == f"/2010-04-01/Accounts/{TW_SID}/Tokens.json"


def test_twilio_refusing_is_invalid_api_key_without_the_token(provider: FakeProvider) -> None:
    provider.status = 401
    provider.answer = {"code": 20003, "message": "Authenticate", "status": 401}
    error = raises(ErrorCode.INVALID_API_KEY, turn.twilio, TW_SID, TW_TOKEN, base_url=provider.url)
    assert "Twilio" in error.message and "Authenticate" in error.message
    basic = base64.b64encode(f"{TW_SID}:{TW_TOKEN}".encode()).decode()
    assert TW_TOKEN not in str(error) and basic not in str(error)


def test_twilio_checks_its_arguments(provider: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(turn.TWILIO_SID_ENV, raising=False)
    error = raises(ErrorCode.INVALID_INPUT, turn.twilio, auth_token=TW_TOKEN, base_url=provider.url)
    assert turn.TWILIO_SID_ENV in error.message
    raises(ErrorCode.INVALID_INPUT, turn.twilio, TW_SID, TW_TOKEN, ttl=86401, base_url=provider.url)
    raises(ErrorCode.INVALID_INPUT, turn.twilio, TW_SID, TW_TOKEN, api_key_sid="", base_url=provider.url)
    assert provider.seen == []


# -- with a Session ----------------------------------------------------------------------------------
def test_each_helpers_result_is_accepted_by_a_session(provider: FakeProvider, fixed_clock: float) -> None:
    provider.answer = cloudflare_answer()
    results = [
        turn.turn_server("turn:t.example:3478", "alice", "pw"),
        turn.coturn("turn:t.example:3478", SECRET, ttl=600),
        turn.cloudflare("k", CF_TOKEN, base_url=provider.url),
    ]
    provider.answer = twilio_answer()
    results.append(turn.twilio(TW_SID, TW_TOKEN, base_url=provider.url))
    for servers in results:
        s = Session(source="pattern", ice_servers=servers)
        try:
            relays = [ice for ice in s.ice_servers if "turn:" in str(ice.urls)]
            assert relays, servers
            assert all(ice.username and ice.credential for ice in relays)
            assert relays[0].username == next(x["username"] for x in servers if "username" in x)
        finally:
            s.disconnect()


def test_the_kernels_peer_relays_through_the_first_turn_url(provider: FakeProvider) -> None:
    """aiortc uses one STUN and one TURN server: the first of each, with that entry's credentials."""
    provider.answer = cloudflare_answer()
    servers = turn.cloudflare("k", CF_TOKEN, base_url=provider.url)
    s = Session(source="pattern", ice_servers=servers)
    try:
        kwargs = connection_kwargs(s.ice_servers)
    finally:
        s.disconnect()
    assert kwargs["stun_server"] == ("stun.cloudflare.com", 3478)
    assert (kwargs["turn_server"], kwargs["turn_transport"]) == (("turn.cloudflare.com", 3478), "udp")
    assert (kwargs["turn_username"], kwargs["turn_password"]) == ("cf-user-1", "cf-cred-1")


def test_the_provider_secret_never_reaches_the_page(
    provider: FakeProvider, comms: list[RecordingComm], fixed_clock: float
) -> None:
    provider.answer = cloudflare_answer(username="short-lived-user", credential="short-lived-cred")
    cases = [
        (turn.cloudflare("key-1", CF_TOKEN, base_url=provider.url), CF_TOKEN, "short-lived-cred"),
        (turn.coturn("turn:t.example:3478", SECRET, ttl=600), SECRET, None),
    ]
    for servers, secret, credential in cases:
        s = Session(source="camera", ice_servers=servers)
        try:
            rec = comm_of(s.widget, comms)
            rec.from_page({"type": "camera_error", "name": "NotAllowedError", "message": "x"})
        finally:
            s.disconnect()
        sent = json.dumps([d for _, d in rec.sent], default=str)
        # The page gets the short-lived TURN credential (its RTCPeerConnection needs it) ...
        page_servers = rec.custom("ice_servers")[0]["servers"]
        expected = credential or servers[0]["credential"]
        assert any(entry.get("credential") == expected for entry in page_servers), page_servers
        # ... never the provider's secret.
        assert secret not in sent
