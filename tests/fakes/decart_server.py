"""A local fake of Decart's realtime *server*, for the real `decart` SDK (0.2.4) to talk to.

It speaks the control protocol as the SDK's source defines it: a WebSocket on `/v1/stream`
(`?api_key&model[&resolution][&speed]&livekit_early_room_info&user_agent`); the client sends
`livekit_join`, `prompt`, `set_image`; the server answers `queue_position`, `livekit_room_info`,
`prompt_ack`, `set_image_ack`, `generation_started`, `generation_tick`, `generation_ended`, `error`.
A wrong key is refused with HTTP 401 (or, scripted, by an `error` answer to the join); closing a
socket is a drop. It listens on 127.0.0.1 only, on a random port, is scripted per test through
`Script`, and records everything it saw.

LiveKit's media server cannot run here, so LiveKit's `Room` is the one thing stubbed (`StubRoom`,
installed into the SDK's `livekit_connection` module only): `connect()` checks the room token
this server issued, `publish_track()` reads the SDK's real `rtc.LocalVideoTrack` through a real
`rtc.VideoStream`, and the "inference server" answers on a real `rtc.LocalVideoTrack` (a remote
track cannot be built without a server; the SDK and decart_nb read it through `rtc.VideoStream`
all the same). Output frames are a solid colour that encodes the state this server holds (input
frames pass through unchanged in passthrough), so a test can tell which state is live.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import pytest

try:  # both come with the decart extra
    import livekit.rtc as rtc
    from aiohttp import WSMsgType, web
except ImportError as exc:  # without it, every test module importing this fake is skipped
    raise pytest.skip.Exception(
        f'needs pip install "decart_nb[decart]" ({exc})', allow_module_level=True
    ) from exc

VALID_KEY = "dct_fake_server_key_4f9c2a"
NO_CREDITS_TEXT = "Insufficient credits"
INFERENCE_PREFIX = "inference-server-"  # the SDK only subscribes to tracks of such participants


def _reads_as_refused(port: int) -> bool:
    """Whether Decart's SDK would read a URL with this port as a permanent error (0.2.4)."""
    from decart.realtime.livekit_manager import _is_permanent_error

    return _is_permanent_error(Exception(f"ws://127.0.0.1:{port}/v1/stream"))


@dataclass
class Script:
    """What the server does; tests change it at any time (it is read when each step happens)."""

    valid_keys: set[str] = field(default_factory=lambda: {VALID_KEY})
    # A wrong key: refused at the upgrade (HTTP 401, False), or the socket is accepted and the
    # join answered with an `error` message (True), whose text does not quote the URL.
    refuse_key_in_socket: bool = False
    # The account's credits ran out: every new control channel's join gets an `error` answer.
    no_credits: bool = False
    queue: list[int] = field(default_factory=list)  # positions announced before the room info
    queue_step_s: float = 0.05
    room_info_delay_s: float = 0.0
    room_info_delays: list[float] = field(default_factory=list)  # per join, before room_info_delay_s
    ack_delay_s: float = 0.0
    rejections: dict[str, str] = field(default_factory=dict)  # word in a prompt -> error text
    tick_every_s: float | None = None  # generation_started then integer ticks, once media flows
    refuse: list[int] = field(default_factory=list)  # HTTP statuses for the next upgrades (e.g. 503)
    drop_after: list[str] = field(default_factory=list)  # close the socket after sending this ack type
    drop_on: list[str] = field(default_factory=list)  # close it on receiving this type (no ack)
    # Output frames leave this long after they were painted: the network and LiveKit's jitter
    # buffer, which the acks (on the WebSocket) do not wait for.
    output_lag_s: float = 0.0


@dataclass
class Conn:
    """One control channel (one SDK connection attempt that got through the upgrade)."""

    number: int
    query: dict[str, str]
    ws: web.WebSocketResponse
    session_id: str
    token: str
    prompt: str | None = None
    image: str | None = None
    enhance: bool | None = None
    seen: list[dict[str, Any]] = field(default_factory=list)
    room: StubRoom | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def live_state(self) -> tuple[str | None, str | None]:
        return self.prompt, self.image


class FakeDecartServer:
    def __init__(self, script: Script | None = None, log_path: str | None = None) -> None:
        self.script = script or Script()
        self.log_path = log_path  # every request and message also goes here, one JSON line each
        self.conns: list[Conn] = []
        self.http: list[dict[str, Any]] = []  # every HTTP request: method, path, query, headers
        self.token_requests: list[dict[str, Any]] = []  # bodies of POST /v1/client/tokens
        # Client tokens' keys (ek_...) it minted: Decart takes them wherever it takes the key.
        self.minted: set[str] = set()
        self._numbers = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self, port: int = 0) -> FakeDecartServer:
        """Listen on `port` (0: a random one), or on a random one when its digits hold "401"."""
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/v1/stream", self._stream)
        app.router.add_post("/watch-stream/{room}", self._watch)
        app.router.add_post("/v1/client/tokens", self._token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        for _ in range(100):
            site = web.TCPSite(self._runner, "127.0.0.1", port)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            # The SDK gives up on any error whose text holds "401", and aiohttp's text holds the
            # URL: on port 401xx every refused reconnect would look like a refused key.
            if not _reads_as_refused(self.port):
                return self
            await site.stop()
            port = 0
        raise RuntimeError("no port free of the SDK's permanent-error words")

    async def close(self) -> None:
        for conn in self.conns:
            await conn.ws.close()  # aiohttp's cleanup would otherwise wait for open sockets
            for task in conn.tasks:
                task.cancel()
            await asyncio.gather(*conn.tasks, return_exceptions=True)
            if conn.room is not None:
                await conn.room.disconnect()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def current(self) -> Conn:
        return self.conns[-1]

    def _log(self, entry: dict[str, Any]) -> None:
        if self.log_path is not None:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")

    def sent(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Client messages of every connection, in order (optionally of one type)."""
        return [m for c in self.conns for m in c.seen if kind is None or m.get("type") == kind]

    # -- test controls (call on the server's loop) ----------------------------------------------
    async def drop(self) -> None:
        """Close the current control channel: the SDK sees its socket end (a drop)."""
        await self.current.ws.close()

    async def send(self, message: dict[str, Any]) -> None:
        await self.current.ws.send_str(json.dumps(message))

    async def error(self, text: str) -> None:
        await self.send({"type": "error", "error": text})

    async def end_generation(self, reason: str, seconds: int) -> None:
        await self.send({"type": "generation_ended", "seconds": seconds, "reason": reason})

    async def end_session(self, reason: str = "timeout", seconds: int = 600) -> None:
        """Decart ends the server session (its time limit: reason "timeout"): it says so, then closes."""
        await self.end_generation(reason, seconds)
        await self.current.ws.close()

    async def run_out_of_credits(self, seconds: int = 42) -> None:
        """The credits ran out: generation_ended, the error, the close; new sessions are refused."""
        self.script.no_credits = True
        await self.end_generation("insufficient_credits", seconds)
        await self.error(NO_CREDITS_TEXT)
        await self.current.ws.close()

    # -- HTTP ------------------------------------------------------------------------------------
    @web.middleware
    async def _record(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        entry = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": dict(request.headers),
        }
        self.http.append(entry)
        self._log({"http": entry})
        response: web.StreamResponse = await handler(request)
        return response

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        if not self._accepts(request.query.get("api_key")):
            if self.script.refuse_key_in_socket:
                return await self._refuse_in_socket(request)
            return web.Response(status=401, text="Invalid API key")
        if self.script.refuse:
            return web.Response(status=self.script.refuse.pop(0), text="Service temporarily unavailable")
        if self.script.no_credits:
            return await self._refuse_in_socket(request, NO_CREDITS_TEXT)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        number = next(self._numbers)
        conn = Conn(number, dict(request.query), ws, session_id=f"sess-{number}", token=f"lk-token-{number}")
        self.conns.append(conn)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
                data = json.loads(msg.data)
                conn.seen.append(data)
                self._log({"message": data})
                if data.get("type") in self.script.drop_on:
                    self.script.drop_on.remove(data["type"])
                    await ws.close()
                    break
                await self._handle(conn, data)
        finally:
            for task in conn.tasks:
                task.cancel()
        return ws

    def _accepts(self, key: str | None) -> bool:
        return key in self.script.valid_keys or key in self.minted

    async def _refuse_in_socket(
        self, request: web.Request, text: str = "Invalid API key"
    ) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and json.loads(msg.data).get("type") == "livekit_join":
                await ws.send_str(json.dumps({"type": "error", "error": text}))
                break
        await ws.close()
        return ws

    async def _watch(self, request: web.Request) -> web.Response:
        if not self._accepts(request.headers.get("x-api-key")):
            return web.Response(status=401, text="Invalid API key")
        room = request.match_info["room"]
        host = next((c for c in self.conns if f"room-{c.number}" == room), None)
        if host is None:
            return web.Response(status=404, text="no such session")
        body = {
            "livekit_url": self.url,
            "token": host.token,
            "room_name": room,
            "session_id": host.session_id,
        }
        return web.json_response(body)

    async def _token(self, request: web.Request) -> web.Response:
        if request.headers.get("X-API-KEY") not in self.script.valid_keys:
            return web.Response(status=401, text='{"error": "Invalid API key"}')
        body = await request.json()
        self.token_requests.append(body)
        number = len(self.token_requests)
        made = {
            "apiKey": f"ek_fake_{number}",
            "token": f"eyJfake.{number}.sig",
            "expiresAt": "2026-12-01T04:00:00Z",
        }
        self.minted.add(made["apiKey"])
        if "allowedOrigins" in body or "allowedModels" in body:
            made["permissions"] = {
                "origins": body.get("allowedOrigins", []),
                "models": body.get("allowedModels", []),
            }
        if "constraints" in body:
            made["constraints"] = body["constraints"]
        return web.json_response(made)

    # -- the control protocol ---------------------------------------------------------------------
    async def _handle(self, conn: Conn, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "livekit_join":
            conn.tasks.append(asyncio.ensure_future(self._join(conn)))
        elif kind == "prompt":
            conn.tasks.append(asyncio.ensure_future(self._ack_prompt(conn, data)))
        elif kind == "set_image":
            conn.tasks.append(asyncio.ensure_future(self._ack_image(conn, data)))
        else:
            await conn.ws.send_str(json.dumps({"type": "error", "error": f"unknown message type {kind}"}))

    async def _join(self, conn: Conn) -> None:
        queue = list(self.script.queue)
        for position in queue:
            await conn.ws.send_str(
                json.dumps({"type": "queue_position", "position": position, "queue_size": max(queue) + 1})
            )
            await asyncio.sleep(self.script.queue_step_s)
        delays = self.script.room_info_delays
        await asyncio.sleep(delays.pop(0) if delays else self.script.room_info_delay_s)
        info = {
            "type": "livekit_room_info",
            "livekit_url": self.url,  # a LiveKit URL, for the stub room only
            "token": conn.token,
            "room_name": f"room-{conn.number}",
            "session_id": conn.session_id,
        }
        await conn.ws.send_str(json.dumps(info))

    def _rejection(self, prompt: object) -> str | None:
        text = prompt if isinstance(prompt, str) else ""
        return next((err for word, err in self.script.rejections.items() if word in text), None)

    async def _ack_prompt(self, conn: Conn, data: dict[str, Any]) -> None:
        await asyncio.sleep(self.script.ack_delay_s)
        error = self._rejection(data["prompt"])
        if error is None:
            conn.prompt, conn.enhance = data["prompt"], data.get("enhance_prompt")
        ack = {"type": "prompt_ack", "prompt": data["prompt"], "success": error is None, "error": error}
        await self._reply(conn, ack)

    async def _ack_image(self, conn: Conn, data: dict[str, Any]) -> None:
        await asyncio.sleep(self.script.ack_delay_s)
        error = self._rejection(data.get("prompt"))
        if error is None:
            conn.image = data.get("image_data")
            # An explicit null prompt clears it (passthrough); an absent one keeps it.
            if "prompt" in data:
                conn.prompt = data["prompt"]
            if "enhance_prompt" in data:
                conn.enhance = data["enhance_prompt"]
        await self._reply(conn, {"type": "set_image_ack", "success": error is None, "error": error})

    async def _reply(self, conn: Conn, ack: dict[str, Any]) -> None:
        if conn.ws.closed:
            return
        await conn.ws.send_str(json.dumps(ack))
        if ack["type"] in self.script.drop_after:
            self.script.drop_after.remove(ack["type"])
            await conn.ws.close()

    async def _generate(self, conn: Conn) -> None:
        """generation_started, then a tick with the whole seconds billed so far (the SDK's int)."""
        every = self.script.tick_every_s
        if every is None or conn.ws.closed:
            return
        await conn.ws.send_str(json.dumps({"type": "generation_started"}))
        for seconds in itertools.count(1):
            await asyncio.sleep(every)
            if conn.ws.closed:
                return
            await conn.ws.send_str(json.dumps({"type": "generation_tick", "seconds": seconds}))

    def conn_for_token(self, token: str) -> Conn | None:
        return next((c for c in self.conns if c.token == token), None)


# -- LiveKit: the stubbed Room --------------------------------------------------------------------
def state_colour(prompt: str | None, image: str | None) -> tuple[int, int, int]:
    """The solid colour the fake model paints for a state (distinct states, distinct colours)."""
    code = zlib.crc32(f"{prompt}|{image}".encode())
    return (40 + code % 180, 40 + (code >> 8) % 180, 40 + (code >> 16) % 180)


def _i420(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    r, g, b = rgb
    y = round(0.257 * r + 0.504 * g + 0.098 * b + 16)
    u = round(-0.148 * r - 0.291 * g + 0.439 * b + 128)
    v = round(0.439 * r - 0.368 * g - 0.071 * b + 128)
    planes = [np.full(width * height, y, np.uint8), np.full(width * height // 4, u, np.uint8)]
    planes.append(np.full(width * height // 4, v, np.uint8))
    return b"".join(p.tobytes() for p in planes)


@dataclass
class _Participant:
    identity: str


class _Publication:
    sid = "TR_stub"


class _LocalParticipant:
    def __init__(self, room: StubRoom) -> None:
        self._room = room
        self.published: list[tuple[Any, Any]] = []

    async def publish_track(self, track: Any, options: Any = None) -> _Publication:
        self.published.append((track, options))
        self._room.serve(track)
        return _Publication()


class StubRoom:
    """LiveKit's Room, without a LiveKit server: the one stub in these tests (see the module doc)."""

    def __init__(self, server: FakeDecartServer) -> None:
        self._server = server
        self._handlers: dict[str, list[Callable[..., Any]]] = {}
        self.local_participant = _LocalParticipant(self)
        self.conn: Conn | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._out: rtc.VideoSource | None = None
        self.output: Any = None  # the model's track, once the first frame came in
        self.viewers: list[StubRoom] = []

    def on(self, event: str, callback: Callable[..., Any] | None = None) -> Any:
        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self._handlers.setdefault(event, []).append(fn)
            return fn

        return register(callback) if callback is not None else register

    def emit(self, event: str, *args: Any) -> None:
        for fn in list(self._handlers.get(event, [])):
            fn(*args)

    async def connect(self, url: str, token: str, options: Any = None) -> None:
        conn = self._server.conn_for_token(token)
        if url != self._server.url or conn is None or conn.ws.closed:
            raise ConnectionError("LiveKit: invalid room token")
        self.conn = conn
        host = conn.room
        if host is None:
            conn.room = self  # the publisher's room
        else:  # a viewer (Decart's subscribe) joins the publisher's room: it gets the model's track
            host.viewers.append(self)
            if host.output is not None:
                asyncio.get_running_loop().call_soon(self._subscribed, host.output)

    def _subscribed(self, track: Any) -> None:
        self.emit("track_subscribed", track, _Publication(), _Participant(INFERENCE_PREFIX + "1"))

    def serve(self, track: Any) -> None:
        """Be the inference server: read the published track, answer on a track of our own."""
        assert self.conn is not None
        self._tasks.append(asyncio.ensure_future(self._model(track, self.conn)))
        self._tasks.append(asyncio.ensure_future(self._server._generate(self.conn)))

    async def _model(self, track: Any, conn: Conn) -> None:
        stream = rtc.VideoStream(track, capacity=1, format=rtc.VideoBufferType.I420)
        painted: dict[tuple[str | None, str | None], bytes] = {}
        try:
            async for event in stream:
                frame = event.frame
                if self._out is None:
                    self._out = rtc.VideoSource(frame.width, frame.height)
                    self.output = rtc.LocalVideoTrack.create_video_track("model-output", self._out)
                    for room in [self, *self.viewers]:
                        room._subscribed(self.output)
                state = conn.live_state
                if state == (None, None):
                    data = bytes(frame.data)
                else:
                    if state not in painted:
                        painted[state] = _i420(frame.width, frame.height, state_colour(*state))
                    data = painted[state]
                out = rtc.VideoFrame(frame.width, frame.height, rtc.VideoBufferType.I420, data)
                lag = self._server.script.output_lag_s
                if lag:
                    asyncio.get_running_loop().call_later(lag, self._send, out, event.timestamp_us)
                else:
                    self._send(out, event.timestamp_us)
        finally:
            await stream.aclose()

    def _send(self, frame: rtc.VideoFrame, timestamp_us: int) -> None:
        if self._out is not None:  # a lagging frame may outlive the room
            self._out.capture_frame(frame, timestamp_us=timestamp_us)

    async def disconnect(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._out is not None:
            await self._out.aclose()
            self._out = None


class _RtcWithStubRoom(ModuleType):
    """`livekit.rtc` as the SDK's connection module sees it: everything real but `Room`."""

    def __init__(self, server: FakeDecartServer) -> None:
        super().__init__("livekit.rtc")
        self._server = server

    def Room(self) -> StubRoom:
        return StubRoom(self._server)

    def __getattr__(self, name: str) -> Any:
        return getattr(rtc, name)


@contextlib.contextmanager
def stub_livekit_room(server: FakeDecartServer) -> Iterator[None]:
    """Install StubRoom into the SDK's LiveKit connection module (and nowhere else)."""
    from decart.realtime import livekit_connection

    real = livekit_connection.rtc
    livekit_connection.rtc = _RtcWithStubRoom(server)  # type: ignore[assignment]
    try:
        yield
    finally:
        livekit_connection.rtc = real


@contextlib.contextmanager
def serving(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDecartServer]:
    """The fake server on decart_nb's loop (held throughout), reached by the real SDK through the
    base-URL option, with no key in the environment and LiveKit's room stubbed to it."""
    from decart_nb import _loop

    _loop.acquire()
    fake = _loop.run(FakeDecartServer().start(), timeout=10)
    monkeypatch.setenv("DECART_REALTIME_BASE_URL", fake.url)
    monkeypatch.delenv("DECART_API_KEY", raising=False)
    try:
        with stub_livekit_room(fake):
            yield fake
    finally:
        _loop.run(fake.close(), timeout=10)
        _loop.release()
