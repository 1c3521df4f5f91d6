"""Attack: read the Decart API key (or a client token) out of an error a user's cell gets.

A notebook saves what a cell prints, and a verbose traceback prints every frame's variables:
IPython's `%xmode Verbose` (VerboseTB, through stack_data), `traceback.TracebackException(...,
capture_locals=True)`, error trackers that record frame locals. Each failure path runs the REAL
`decart` SDK against tests/fakes/decart_server.py (127.0.0.1 only), and each of its errors is
read through each of those surfaces, plus a walk over everything the error reaches (its args,
attributes, cause, context, and its traceback's frames' locals, through containers and objects).

Only the key's one holder, SecretKey (redacted repr), and the live SDK client (which needs the
key to reconnect) are not opened by the walk; both are checked to print no key. The test's own
frames (anything under tests/) are the user's: they are not read (the key reaches the kernel
through DECART_API_KEY or a function call, so no line a traceback shows names it)."""

from __future__ import annotations

import logging
import socket
import threading
import traceback
import types
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import decart_nb
from decart_nb import DecartNBError, ErrorCode, Session, _loop, turn
from decart_nb.engines.decart import SecretKey
from tests.fakes.decart_server import VALID_KEY, FakeDecartServer, stub_livekit_room
from tests.helpers import wait_until

decart = pytest.importorskip("decart", reason='needs pip install "decart_nb[decart]"')
pytestmark = pytest.mark.webrtc

WRONG_KEY = "dct_wrong_key_5e1a77c0ffee"
TURN_SECRET = "turn_provider_secret_8c41d2"  # a TURN provider's API token / auth token / shared secret
SECRETS = (VALID_KEY, WRONG_KEY, TURN_SECRET)
MODEL = "lucy-2.1"
SURFACES = ("capture_locals", "ipython_verbose", "stack_data", "walk")
MAX_DEPTH = 6  # object hops past a frame's locals (Session -> engine -> ... -> the SDK client)
MAX_NODES = 50_000


# -- the surfaces --------------------------------------------------------------------------------
def chain(error: BaseException) -> list[BaseException]:
    """The error and every exception linked to it (causes and contexts, suppressed ones too)."""
    found: list[BaseException] = []
    todo: list[BaseException] = [error]
    while todo:
        current = todo.pop()
        if any(current is seen for seen in found):
            continue
        found.append(current)
        linked = [current.__cause__, current.__context__, getattr(current, "cause", None)]
        todo += [e for e in linked if isinstance(e, BaseException)]
    return found


TESTS = str(Path(__file__).resolve().parent.parent)


def _users(frame: types.FrameType) -> bool:
    """A test's own frame: the user's code, which holds what the user gave it."""
    return frame.f_code.co_filename.startswith(TESTS)


def capture_locals(error: BaseException) -> str:
    return "".join(
        "".join(traceback.TracebackException.from_exception(e, capture_locals=True).format())
        for e in chain(error)
    )


def ipython_verbose(error: BaseException) -> str:
    from IPython.core.ultratb import VerboseTB

    verbose = VerboseTB(theme_name="nocolor", include_vars=True)
    return "\n".join(verbose.text(type(e), e, e.__traceback__) for e in chain(error))


def stack_data_variables(error: BaseException) -> str:
    import stack_data

    lines = []
    for e in chain(error):
        if e.__traceback__ is None:  # reported as an event, never raised
            continue
        for info in stack_data.FrameInfo.stack_data(e.__traceback__, collapse_repeated_frames=False):
            if isinstance(info, stack_data.FrameInfo) and not _users(info.frame):
                lines += [f"{v.name} = {v.value!r}" for v in info.variables]
    return "\n".join(lines)


def walk(root: object) -> str:
    """repr/str of everything `root` reaches, one line per object that shows a secret."""
    shown: list[str] = []
    seen: set[int] = set()
    todo: list[tuple[object, str, int]] = [(root, "error", 0)]
    while todo and len(seen) < MAX_NODES:
        obj, path, depth = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        for text in _texts(obj):
            if any(secret in text for secret in SECRETS):
                shown.append(f"{path}: {text[:200]}")
                break
        todo += _children(obj, path, depth)
    return "\n".join(shown)


def _texts(obj: object) -> list[str]:
    if isinstance(obj, (bytes, bytearray)):
        return [bytes(obj).decode("latin-1")]
    texts = []
    for show in (repr, str):
        try:
            texts.append(show(obj))
        except Exception as exc:  # noqa: BLE001 - an object that cannot print shows nothing
            texts.append(type(exc).__name__)
    return texts


def _children(obj: object, path: str, depth: int) -> list[tuple[object, str, int]]:
    if isinstance(obj, BaseException):
        kids = [(a, f"{path}.args[{i}]", 0) for i, a in enumerate(obj.args)]
        kids += [(v, f"{path}.{k}", 0) for k, v in vars(obj).items()]
        kids += [(obj.__cause__, f"{path}.__cause__", 0), (obj.__context__, f"{path}.__context__", 0)]
        return [*kids, (obj.__traceback__, f"{path}.__traceback__", 0)]
    if isinstance(obj, types.TracebackType):
        kids = [] if _users(obj.tb_frame) else [(obj.tb_frame, f"{path}<{obj.tb_frame.f_code.co_name}>", 0)]
        return [*kids, (obj.tb_next, path, 0)]
    if isinstance(obj, types.FrameType):
        return [(v, f"{path}.{k}", 0) for k, v in obj.f_locals.items()]
    if depth >= MAX_DEPTH or _opaque(obj):
        return []
    if isinstance(obj, dict):
        return [(v, f"{path}[{k!r:.30}]", depth + 1) for k, v in obj.items()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(obj)]
    return [(v, f"{path}.{k}", depth + 1) for k, v in _attributes(obj)]


def _opaque(obj: object) -> bool:
    """Printed but not opened: the key's holders (SecretKey, the live SDK client's internals),
    code, and the machinery every object reaches (modules, classes, loops, threads)."""
    module = type(obj).__module__ or ""
    sdk = module == "decart" or module.startswith("decart.")
    return isinstance(obj, (SecretKey, str, type, types.ModuleType, types.FunctionType)) or sdk


def _attributes(obj: object) -> list[tuple[str, object]]:
    found: dict[str, object] = dict(getattr(obj, "__dict__", None) or {})
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if isinstance(name, str) and hasattr(obj, name):
                found.setdefault(name, getattr(obj, name))
    return list(found.items())


READERS: dict[str, Callable[[BaseException], str]] = {
    "capture_locals": capture_locals,
    "ipython_verbose": ipython_verbose,
    "stack_data": stack_data_variables,
    "walk": walk,
}


def assert_no_secret(error: BaseException) -> None:
    """No surface shows a secret; the message names each one that does."""
    leaks = []
    for surface, read in READERS.items():
        lines = [line for line in read(error).splitlines() if any(secret in line for secret in SECRETS)]
        leaks += [f"{surface}: {line[:300]}" for line in lines[:5]]
    assert not leaks, "the key shows in:\n" + "\n".join(leaks)


# -- the failures ----------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def logs_show_no_secret(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test's log records, DEBUG up (decart_nb's, the SDK's, aiohttp's...), name no secret."""
    caplog.set_level(logging.DEBUG)
    yield
    assert not [secret for secret in SECRETS if secret in caplog.text]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeDecartServer]:
    _loop.acquire()
    fake = _loop.run(FakeDecartServer().start(), timeout=10)
    try:
        with stub_livekit_room(fake), pytest.MonkeyPatch.context() as env:
            env.setenv("DECART_REALTIME_BASE_URL", fake.url)
            env.setenv("DECART_API_BASE_URL", f"http://127.0.0.1:{fake.port}")
            env.setenv("DECART_API_KEY", VALID_KEY)
            yield fake
    finally:
        _loop.run(fake.close(), timeout=10)
        _loop.release()


@pytest.fixture
def wrong_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECART_API_KEY", WRONG_KEY)


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's connect retries (1, 2, 4, 8 s apart) without the waits."""
    import tenacity
    from decart.realtime.livekit_manager import LiveKitManager

    monkeypatch.setattr(LiveKitManager.connect.retry, "wait", tenacity.wait_none())  # type: ignore[attr-defined]


def stored_key() -> str:
    """The key as a user's code gets it from a secrets store (no line of this file holds it)."""
    return WRONG_KEY


def decart_session() -> Session:
    return Session(engine="decart", source="pattern", model=MODEL)


def failed(call: Callable[[], object]) -> DecartNBError:
    with pytest.raises(DecartNBError) as info:
        call()
    return info.value


def test_connect_refused_by_the_server(
    server: FakeDecartServer, wrong_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: the server's text names no key, so the SDK's exception came as the cause."""
    monkeypatch.setattr(server.script, "refuse_key_in_socket", True)
    error = failed(decart_session().connect)
    assert_no_secret(error)
    assert error.code == ErrorCode.INVALID_API_KEY and "Invalid API key" in error.message
    assert "WebRTCError" in error.data["sdk_cause"]  # what the cause said, without its frames


def test_connect_unreachable(wrong_key: None, no_backoff: None) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: refused
    url = f"ws://127.0.0.1:{closed.getsockname()[1]}"
    try:
        s = Session(engine="decart", source="pattern", model=MODEL, engine_options={"base_url": url})
        error = failed(s.connect)
    finally:
        closed.close()
    assert_no_secret(error)
    assert error.code == ErrorCode.WEBRTC_SIGNALING_ERROR and "Cannot connect" in error.message
    assert "ConnectionRefusedError" in error.data["sdk_cause"]


def test_a_refused_reconnect(server: FakeDecartServer) -> None:
    """A drop, then Decart refuses the key: the errors the session reports, and wait_until's."""
    s = decart_session().connect()
    try:
        server.script.valid_keys, server.script.refuse_key_in_socket = set(), True
        _loop.run(server.drop(), timeout=10)
        waited = failed(lambda: s.wait_until("generating", timeout=30))
        assert wait_until(lambda: bool(s.errors), timeout=10)
    finally:
        server.script.valid_keys, server.script.refuse_key_in_socket = {VALID_KEY}, False
        s.disconnect()
    for error in [waited, *s.errors]:
        assert_no_secret(error)
    assert waited.code == ErrorCode.NOT_CONNECTED


def test_a_refused_token(server: FakeDecartServer, wrong_key: None) -> None:
    error = failed(decart_nb.tokens.create)
    assert_no_secret(error)
    assert error.code == ErrorCode.TOKEN_CREATE_ERROR and "401" in error.message


def test_an_unreachable_token_endpoint(monkeypatch: pytest.MonkeyPatch, wrong_key: None) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    monkeypatch.setenv("DECART_API_BASE_URL", f"http://127.0.0.1:{closed.getsockname()[1]}")
    try:
        error = failed(decart_nb.tokens.create)
    finally:
        closed.close()
    assert_no_secret(error)
    assert error.code == ErrorCode.TOKEN_CREATE_ERROR


def test_a_refused_watch(server: FakeDecartServer, wrong_key: None) -> None:
    from decart.realtime.subscribe import encode_subscribe_token

    error = failed(lambda: decart_nb.watch(encode_subscribe_token("room-1")))
    assert_no_secret(error)
    assert "401" in error.message


def test_translate_cuts_every_link_to_the_sdks_frames() -> None:
    """Every path (disconnect, the media pumps, the SDK's error events) goes through translate():
    an SDK error whose frames and cause chain hold the key comes out with none of them."""
    from decart_nb.engines.decart import load_sdk, resolve_key, translate

    sdk = load_sdk()
    key = resolve_key(stored_key())

    def sdk_call(api_key: str) -> None:
        url = f"wss://api.decart.ai/v1/stream?api_key={api_key}"  # held by the frame only
        try:
            raise ConnectionError(f"connection reset by {url.split('/')[2]}")
        except ConnectionError as inner:
            raise sdk.error("control channel closed") from inner

    def engine_call() -> DecartNBError:
        try:
            sdk_call(key.reveal())
        except Exception as exc:  # noqa: BLE001 - as the engine does
            error = translate(exc, "disconnect from Decart", sdk, key, event=True)
        return error

    error = engine_call()
    assert_no_secret(error)
    assert error.__cause__ is None and error.__context__ is None and error.cause is None
    assert error.__traceback__ is None
    assert error.data["sdk_cause"] == (
        "DecartSDKError: control channel closed <- ConnectionError: connection reset by api.decart.ai"
    )


# A key passed as an argument (read from a secrets store), and an argument error after it: the
# frames that took the key are in the traceback.
def test_a_bad_session_argument_after_the_key() -> None:
    error = failed(
        lambda: Session(
            engine="decart", source="pattern", api_key=stored_key(), engine_options={"resolution": "4k"}
        )
    )
    assert_no_secret(error)
    assert error.code == ErrorCode.INVALID_INPUT


def test_a_bad_engine_argument_after_the_key() -> None:
    from decart_nb.engines.decart import DecartEngine

    error = failed(lambda: DecartEngine(api_key=stored_key(), codec="av1"))
    assert_no_secret(error)
    assert error.code == ErrorCode.INVALID_INPUT


def test_a_bad_token_argument_after_the_key() -> None:
    error = failed(lambda: decart_nb.tokens.create(0, api_key=stored_key()))
    assert_no_secret(error)
    assert error.code == ErrorCode.INVALID_INPUT


def test_a_bad_watch_token_after_the_key() -> None:
    error = failed(lambda: decart_nb.watch(" ", api_key=stored_key()))
    assert_no_secret(error)
    assert error.code == ErrorCode.INVALID_INPUT


# -- TURN providers' secrets: the same frames, the same surfaces -------------------------------------
def stored_turn_secret() -> str:
    return TURN_SECRET


@pytest.fixture
def refusing_provider() -> Iterator[str]:
    """A loopback HTTP server that refuses every request with 401, as a provider refuses a token."""

    class Refuse(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b'{"message": "authentication failed"}'
            self.send_response(401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_refused_cloudflare_token(refusing_provider: str) -> None:
    error = failed(lambda: turn.cloudflare("key-id", stored_turn_secret(), base_url=refusing_provider))
    assert_no_secret(error)
    assert error.code == ErrorCode.INVALID_API_KEY


def test_a_refused_twilio_token(refusing_provider: str) -> None:
    error = failed(lambda: turn.twilio("AC123", stored_turn_secret(), base_url=refusing_provider))
    assert_no_secret(error)
    assert error.code == ErrorCode.INVALID_API_KEY


def test_a_bad_coturn_argument_after_the_secret() -> None:
    error = failed(lambda: turn.coturn("turn:turn.example.org:3478", stored_turn_secret(), ttl=-1))
    assert_no_secret(error)
    assert error.code == ErrorCode.INVALID_INPUT


# -- a client token, displayed: what a saved notebook keeps ------------------------------------------
def test_a_client_tokens_repr_shows_only_its_tail() -> None:
    from IPython.core.formatters import PlainTextFormatter

    from decart_nb.tokens import ClientToken

    token = ClientToken(
        api_key="ek_" + "a1b2c3d4e5f6a7b8c9d0wxyz",
        token="eyJhbGciOiJIUzI1NiJ9." + "e30." + "sig0123456789abcd",
        expires_at="2026-12-01T04:00:00Z",
        permissions={"models": ["lucy-2.1"]},
    )
    shown = [repr(token), str(token), PlainTextFormatter()(token), repr([token]), f"{token}"]
    for text in shown:
        assert token.api_key not in text and token.token not in text and "e30.sig" not in text
        assert "***wxyz" in text and "***abcd" in text and "lucy-2.1" in text
    assert token.token.endswith("abcd") and token.api_key.startswith("ek_")  # still there to use
