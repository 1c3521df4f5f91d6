"""A fake of Decart's Python SDK (decart 0.2.4, realtime) and of the service behind it.

It keeps the SDK's public shape (RealtimeClient.connect / set / set_prompt / set_image / on /
disconnect, its option and input types, its error classes) and its documented behaviour:
acknowledgements that echo the prompt, rejections with an error text, the 30 s / 15 s ack
timeouts, connect-time events buffered until the caller registered, automatic reconnect with
5 attempts and backoff 1, 2, 4, 8 s (never retried on permission/auth texts) that comes back in
passthrough, generation ticks. Time is scaled by `FakeCloud.time_scale` so tests stay fast.
Media: the fake "model" turns every input frame into a solid grey frame whose level encodes the
server's state, delivered on a remote track that a reconnect replaces.
"""

from __future__ import annotations

import asyncio
import base64
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from decart_nb.engines.decart import DecartSDK

# Written out again on purpose: the fake follows Decart's documented list on its own, so a wrong
# list in the engine (decart_nb.engines.decart.errors) shows up as a failing test.
PERMANENT_ERRORS = (
    "permission denied",
    "not allowed",
    "invalid session",
    "401",
    "invalid api key",
    "unauthorized",
)
RETRY_MAX_ATTEMPTS = 5


# -- the SDK's public types -----------------------------------------------------------------
class DecartSDKError(Exception):
    def __init__(self, message: str, data: dict[str, Any] | None = None, cause: Exception | None = None):
        self.message, self.data, self.cause = message, data or {}, cause
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


class WebRTCError(DecartSDKError):
    def __init__(self, message: str = "WebRTC error", cause: Exception | None = None) -> None:
        super().__init__(message, cause=cause)


class InvalidInputError(DecartSDKError):
    pass


class HandshakeError(Exception):
    """What aiohttp raises when the control channel's upgrade is refused (its text quotes the URL)."""


@dataclass
class Prompt:
    text: str
    enhance: bool = True


@dataclass
class ModelState:
    prompt: Prompt | None = None
    image: bytes | str | None = None


@dataclass
class SetInput:
    prompt: str | None = None
    enhance: bool = True
    image: bytes | str | None = None


@dataclass
class ModelDefinition:
    name: str
    fps: int = 30
    width: int = 1280
    height: int = 720


@dataclass
class RealtimeConnectOptions:
    model: ModelDefinition
    on_remote_stream: Callable[[Any], None]
    initial_state: ModelState | None = None
    resolution: str | None = None
    preferred_video_codec: str = "h264"
    speed: str | None = None


@dataclass
class GenerationTickMessage:
    seconds: int
    type: str = "generation_tick"


_NAMES = ("lucy-2.1", "lucy-2.5", "lucy-2.6", "lucy-vton-3.5", "lucy-vton-3.6", "lucy-restyle-2")
REALTIME_MODELS = (*_NAMES, "lucy-latest", "lucy-vton-latest", "lucy-restyle-latest")


def realtime_model(name: str) -> ModelDefinition:
    if name not in REALTIME_MODELS:
        raise DecartSDKError(f"Model {name} not found")
    return ModelDefinition(name, height=704 if "restyle" in name else 720)


@dataclass
class SessionInfo:
    session_id: str


async def image_only(client: RealtimeClient, image: bytes | None) -> None:
    """An image (or none: passthrough) with an explicit null prompt, as decart_nb sends it."""
    opts = {"timeout": client.cloud.update_timeout_s, "null_prompt": True}
    await client._manager.set_image(None if image is None else _b64(image), opts)


def _b64(image: bytes | str) -> str:
    return base64.b64encode(image).decode() if isinstance(image, bytes) else image


def is_permanent(exc: BaseException) -> bool:
    return any(marker in str(exc).lower() for marker in PERMANENT_ERRORS)


# -- media ----------------------------------------------------------------------------------
class FakeLocalTrack:
    """Stands in for livekit.rtc.LocalVideoTrack: the cloud reads what the engine pushes."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.sink: Callable[[av.VideoFrame], None] | None = None
        self.pushed = 0

    def push(self, frame: av.VideoFrame) -> None:
        self.pushed += 1
        if self.sink is not None:
            self.sink(frame)


class FakeFeed:
    def __init__(self, width: int, height: int) -> None:
        self.track = FakeLocalTrack(width, height)
        self.closed = False

    def push(self, frame: av.VideoFrame) -> None:
        self.track.push(frame)

    async def close(self) -> None:
        self.closed = True


class FakeRemoteTrack:
    """Stands in for livekit.rtc.RemoteVideoTrack; `queue` is unbounded on purpose, so a reader
    that keeps up only because the engine drops frames is seen doing so."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[av.VideoFrame | None] = asyncio.Queue()
        self.sent = 0

    def deliver(self, frame: av.VideoFrame | None) -> None:
        if frame is not None:
            self.sent += 1
        self.queue.put_nowait(frame)


class FakeMedia:
    def __init__(self) -> None:
        self.feeds: list[FakeFeed] = []

    def open_local(self, width: int, height: int) -> FakeFeed:
        feed = FakeFeed(width, height)
        self.feeds.append(feed)
        return feed

    async def remote_frames(self, remote: FakeRemoteTrack) -> AsyncIterator[av.VideoFrame]:
        while True:
            frame = await remote.queue.get()
            if frame is None:
                return
            yield frame


def state_level(prompt: str | None, image: str | None) -> int:
    """The grey level the fake model paints for a server state (passthrough: none)."""
    return 40 + zlib.crc32(f"{prompt}|{image is not None}".encode()) % 170


def painted(width: int, height: int, level: int) -> av.VideoFrame:
    buf = np.full((height * 3 // 2, width), 128, np.uint8)
    buf[:height] = level
    return av.VideoFrame.from_ndarray(buf, format="yuv420p")


# -- the service ----------------------------------------------------------------------------
class FakeCloud:
    """Decart's realtime service as the SDK sees it, with knobs for the tests."""

    def __init__(self, valid_key: str = "dct_fake_valid_key_123", time_scale: float = 0.01) -> None:
        self.valid_key = valid_key
        self.time_scale = time_scale
        self.prompt_timeout_s = 15.0  # the SDK's own ack timeouts (scaled)
        self.update_timeout_s = 30.0
        self.ack_delay_s = 0.0  # unscaled: how long the service takes to acknowledge
        self.rejections: dict[str, str] = {}  # word in a prompt -> the service's error text
        self.fail_attempts: list[str] = []  # error texts of the next connection attempts
        self.prompt: str | None = None  # the service's state
        self.image: str | None = None
        self.wire: list[dict[str, Any]] = []  # client -> server messages, as the SDK writes them
        self.attempts = 0  # connection attempts (initial and reconnect)
        self.sessions = 0  # server sessions started
        self.waits: list[float] = []  # backoff waits between attempts (unscaled seconds)
        self.clients: list[RealtimeClient] = []
        self.media = FakeMedia()

    def sdk(self) -> DecartSDK:
        return DecartSDK(
            connect=RealtimeClient.connect_to(self),
            connect_options=RealtimeConnectOptions,
            model_state=ModelState,
            prompt=Prompt,
            set_input=SetInput,
            model=realtime_model,
            base_url="wss://api.decart.ai",
            error=DecartSDKError,
            invalid_input=InvalidInputError,
            media=self.media,
            image_only=image_only,
        )

    def reject(self, word: str, error: str = "Prompt rejected by content moderation") -> None:
        self.rejections[word] = error

    @property
    def client(self) -> RealtimeClient:
        return self.clients[-1]

    # knobs acting on the live connection
    def drop(self, failing_attempts: list[str] | None = None) -> None:
        """The connection drops; the next reconnect attempts fail with these texts."""
        self.fail_attempts = list(failing_attempts or [])
        self.client._manager.connection.lost()

    def server_error(self, text: str) -> None:
        self.client._manager.connection.server_error(text)

    def tick(self, seconds: int) -> None:
        self.client._manager.connection.tick(seconds)

    # what the service does with a message
    def _decide(self, message: dict[str, Any]) -> tuple[bool, str | None]:
        self.wire.append(message)
        prompt = message.get("prompt")
        for word, error in self.rejections.items():
            if prompt and word in prompt:
                return False, error
        return True, None

    def _commit(self, message: dict[str, Any]) -> None:
        """The service applies an accepted message (when it acknowledges it)."""
        prompt = message.get("prompt")
        if message["type"] == "prompt":
            self.prompt = prompt
        elif "prompt" in message or message.get("image_data") is None:
            self.prompt, self.image = prompt, message.get("image_data")  # both null: passthrough
        else:
            self.image = message["image_data"]  # no prompt given: the prompt stays

    def _check_attempt(self, api_key: str, model: str) -> None:
        self.attempts += 1
        if api_key != self.valid_key:
            url = f"wss://api.decart.ai/v1/stream?api_key={api_key}&model={model}"
            raise HandshakeError(f"401, message='Invalid response status', url='{url}'")
        if self.fail_attempts:
            raise ConnectionError(self.fail_attempts.pop(0))


class Connection:
    """One control channel plus its room (the SDK's LiveKitConnection)."""

    def __init__(self, cloud: FakeCloud, manager: Manager) -> None:
        self.cloud, self.manager = cloud, manager
        self.state = "disconnected"
        self.remote: FakeRemoteTrack | None = None
        self.pending_prompts: dict[str, tuple[asyncio.Event, dict[str, Any]]] = {}
        self.pending_image: tuple[asyncio.Event, dict[str, Any]] | None = None
        self.closed = False
        self.error_fired = False

    async def connect(self, api_key: str, model: str, initial: ModelState | None) -> None:
        try:
            self._set_state("connecting")
            self.cloud._check_attempt(api_key, model)
            self.cloud.prompt = self.cloud.image = None  # a new session starts in passthrough
            if initial is not None and initial.image is not None:
                text = initial.prompt.text if initial.prompt else None
                msg = {"type": "set_image", "image_data": _b64(initial.image)}
                if text is not None:
                    msg |= {"prompt": text, "enhance_prompt": initial.prompt.enhance}  # type: ignore[union-attr]
                await self._initial(msg, "Failed to set initial image")
            elif initial is not None and initial.prompt is not None:
                msg = {
                    "type": "prompt",
                    "prompt": initial.prompt.text,
                    "enhance_prompt": initial.prompt.enhance,
                }
                await self._initial(msg, "Failed to send initial prompt")
            else:
                await self._initial({"type": "set_image", "image_data": None, "prompt": None}, "")
            self.remote = FakeRemoteTrack()
            self.manager.local_track.sink = self.generate
            self.manager.on_remote_stream(self.remote)
            self._set_state("connected")
            self.cloud.sessions += 1
            self.manager.client.session_started(f"fake-session-{self.cloud.sessions}")
        except WebRTCError as exc:
            self._set_state("disconnected")
            self._fire_error_once(exc)
            raise
        except Exception as exc:
            self._set_state("disconnected")
            self._fire_error_once(exc)
            raise WebRTCError(str(exc), cause=exc) from exc

    async def _initial(self, msg: dict[str, Any], failure: str) -> None:
        ok, error = self.cloud._decide(msg)
        if not ok:
            raise WebRTCError(f"{failure}: {error}")
        self.cloud._commit(msg)

    def generate(self, frame: av.VideoFrame) -> None:
        if self.closed or self.remote is None:
            return
        cloud = self.cloud
        if cloud.prompt is None and cloud.image is None:
            out = frame.reformat(format="yuv420p")  # passthrough
        else:
            out = painted(frame.width, frame.height, state_level(cloud.prompt, cloud.image))
        self.remote.deliver(out)

    async def send(self, msg: dict[str, Any]) -> None:
        if self.closed:
            raise RuntimeError("Control channel not connected")
        ok, error = self.cloud._decide(msg)
        delay = self.cloud.ack_delay_s * self.cloud.time_scale
        loop = asyncio.get_running_loop()
        loop.call_later(delay, self._ack, msg, ok, error) if delay else self._ack(msg, ok, error)

    def _ack(self, msg: dict[str, Any], ok: bool, error: str | None) -> None:
        if self.closed:
            return
        if ok:
            self.cloud._commit(msg)
        if msg["type"] == "prompt":
            waiter = self.pending_prompts.get(msg["prompt"])  # the ack echoes the prompt
        else:
            waiter = self.pending_image
        if waiter is not None:
            waiter[1].update(success=ok, error=error)
            waiter[0].set()

    def tick(self, seconds: int) -> None:
        if self.state == "connected":
            self._set_state("generating")
        self.manager.client._emit("generation_tick", GenerationTickMessage(seconds))

    def server_error(self, text: str) -> None:
        self._resolve_pending(text)
        self._fire_error_once(WebRTCError(text))

    def lost(self) -> None:
        self.closed = True
        self._resolve_pending("Control channel disconnected")
        if self.remote is not None:
            self.remote.deliver(None)
        self._set_state("disconnected")

    def cleanup(self) -> None:
        self.closed = True
        if self.remote is not None:
            self.remote.deliver(None)

    def _resolve_pending(self, error: str) -> None:
        waits = list(self.pending_prompts.values()) + ([self.pending_image] if self.pending_image else [])
        for event, result in waits:
            result.update(success=False, error=error)
            event.set()

    def _fire_error_once(self, exc: Exception) -> None:
        if not self.error_fired:
            self.error_fired = True
            self.manager.on_error(exc)

    def _set_state(self, state: str) -> None:
        if self.state == "generating" and state not in ("disconnected", "generating"):
            return
        if self.state != state:
            self.state = state
            self.manager.on_connection_state(state)


class Manager:
    """The SDK's LiveKitManager: state de-duplication, connect retries, automatic reconnect."""

    def __init__(
        self, cloud: FakeCloud, client: RealtimeClient, api_key: str, options: RealtimeConnectOptions
    ):
        self.cloud, self.client, self.api_key, self.options = cloud, client, api_key, options
        self.connection: Connection = Connection(cloud, self)
        self.local_track: FakeLocalTrack = FakeLocalTrack(0, 0)
        self.state = "disconnected"
        self.has_connected = self.is_reconnecting = self.intentional = False
        self.reconnect_task: asyncio.Task[None] | None = None

    def on_remote_stream(self, track: FakeRemoteTrack) -> None:
        self.options.on_remote_stream(track)

    def on_error(self, exc: Exception) -> None:
        self.client._emit("error", WebRTCError(str(exc), cause=exc))

    def emit(self, state: str) -> None:
        if self.state != state:
            self.state = state
            if state in ("connected", "generating"):
                self.has_connected = True
            self.client._emit("connection_change", state)

    def on_connection_state(self, state: str) -> None:
        if self.intentional:
            self.emit("disconnected")
        elif self.is_reconnecting:
            if state in ("connected", "generating"):
                self.is_reconnecting = False
                self.emit(state)
        elif state == "disconnected" and self.has_connected:
            if self.reconnect_task is None or self.reconnect_task.done():
                self.reconnect_task = asyncio.ensure_future(self._reconnect())
        else:
            self.emit(state)

    async def _with_retries(self, attempt: Callable[[], Any]) -> None:
        """tenacity as the SDK configures it: 5 attempts, waits 1, 2, 4, 8 s, permanent errors out."""
        for number in range(1, RETRY_MAX_ATTEMPTS + 1):
            try:
                await attempt()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_permanent(exc) or number == RETRY_MAX_ATTEMPTS:
                    raise
                wait = min(max(2 ** (number - 1), 1), 10)
                self.cloud.waits.append(wait)
                await asyncio.sleep(wait * self.cloud.time_scale)

    async def connect(self, local_track: FakeLocalTrack) -> None:
        self.local_track = local_track

        async def attempt() -> None:
            self.has_connected = self.is_reconnecting = self.intentional = False
            self.connection = Connection(self.cloud, self)
            self.emit("connecting")
            opts = self.options
            await self.connection.connect(self.api_key, opts.model.name, opts.initial_state)

        await self._with_retries(attempt)

    async def _reconnect(self) -> None:
        self.is_reconnecting = True
        self.emit("reconnecting")

        async def attempt() -> None:
            self.connection.cleanup()
            self.connection = Connection(self.cloud, self)
            await self.connection.connect(self.api_key, self.options.model.name, None)  # passthrough

        try:
            await self._with_retries(attempt)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # noqa: BLE001 - the SDK reports a failed reconnect as an error event
            if not self.intentional:
                self.emit("disconnected")
                self.on_error(exc)
        finally:
            self.is_reconnecting = False

    async def set_image(self, image_b64: str | None, opts: dict[str, Any]) -> None:
        conn = self.connection
        event, result = asyncio.Event(), {"success": False, "error": None}
        conn.pending_image = (event, result)
        try:
            msg: dict[str, Any] = {"type": "set_image", "image_data": image_b64}
            if opts.get("null_prompt"):
                msg["prompt"] = None
            if opts.get("prompt") is not None:
                msg["prompt"] = opts["prompt"]
            if opts.get("enhance") is not None:
                msg["enhance_prompt"] = opts["enhance"]
            await conn.send(msg)
            try:
                await asyncio.wait_for(event.wait(), opts["timeout"] * self.cloud.time_scale)
            except TimeoutError:
                raise DecartSDKError("Image send timed out") from None
            if not result["success"]:
                raise DecartSDKError(result.get("error") or "Failed to set image")
        finally:
            conn.pending_image = None

    async def cleanup(self) -> None:
        self.intentional = True
        if self.reconnect_task is not None and not self.reconnect_task.done():
            self.reconnect_task.cancel()
            await asyncio.gather(self.reconnect_task, return_exceptions=True)
        self.connection.cleanup()
        self.emit("disconnected")


class RealtimeClient:
    """The SDK's RealtimeClient: same methods, same event buffering."""

    def __init__(self, cloud: FakeCloud) -> None:
        self.cloud = cloud
        self._callbacks: dict[str, list[Callable[[Any], None]]] = {
            "connection_change": [],
            "error": [],
            "generation_tick": [],
        }
        self._buffering = True
        self._buffer: list[tuple[str, Any]] = []
        self._manager: Manager
        self.hooks: dict[str, Callable[[Any], None] | None] = {}

    def session_started(self, session_id: str) -> None:
        """After a connection's initial state or passthrough was acknowledged (not buffered)."""
        hook = self.hooks.get("on_session_started")
        if hook is not None:
            hook(SessionInfo(session_id))

    @staticmethod
    def connect_to(cloud: FakeCloud) -> Callable[..., Any]:
        async def connect(
            base_url: str,
            api_key: str,
            local_track: FakeLocalTrack,
            options: RealtimeConnectOptions,
            integration: str | None = None,
            **hooks: Callable[[Any], None] | None,
        ) -> RealtimeClient:
            client = RealtimeClient(cloud)
            client.hooks = hooks
            client._manager = Manager(cloud, client, api_key, options)
            try:
                await client._manager.connect(local_track)
            except Exception as exc:
                await client._manager.cleanup()
                raise WebRTCError(str(exc), cause=exc) from exc
            cloud.clients.append(client)
            asyncio.get_running_loop().call_soon(client._flush)
            return client

        return connect

    def _flush(self) -> None:
        self._buffering = False
        for event, data in self._buffer:
            self._dispatch(event, data)
        self._buffer.clear()

    def _emit(self, event: str, data: Any) -> None:
        if self._buffering:
            self._buffer.append((event, data))
        else:
            self._dispatch(event, data)

    def _dispatch(self, event: str, data: Any) -> None:
        for callback in list(self._callbacks[event]):
            callback(data)

    def on(self, event: str, callback: Callable[[Any], None]) -> None:
        if event in self._callbacks:
            self._callbacks[event].append(callback)

    def off(self, event: str, callback: Callable[[Any], None]) -> None:
        if callback in self._callbacks.get(event, []):
            self._callbacks[event].remove(callback)

    async def set(self, input: SetInput) -> None:
        if input.prompt is None and input.image is None:
            raise InvalidInputError("At least one of 'prompt' or 'image' must be provided")
        if input.prompt is not None and not input.prompt.strip():
            raise InvalidInputError("Prompt cannot be empty")
        image = None if input.image is None else _b64(input.image)
        opts = {"prompt": input.prompt, "enhance": input.enhance, "timeout": self.cloud.update_timeout_s}
        await self._manager.set_image(image, opts)

    async def set_prompt(self, prompt: str, enhance: bool = True) -> None:
        if not prompt or not prompt.strip():
            raise InvalidInputError("Prompt cannot be empty")
        conn = self._manager.connection
        event, result = asyncio.Event(), {"success": False, "error": None}
        conn.pending_prompts[prompt] = (event, result)
        try:
            await conn.send({"type": "prompt", "prompt": prompt, "enhance_prompt": enhance})
            try:
                await asyncio.wait_for(event.wait(), self.cloud.prompt_timeout_s * self.cloud.time_scale)
            except TimeoutError:
                raise DecartSDKError("Prompt acknowledgment timed out") from None
            if not result["success"]:
                raise DecartSDKError(result["error"] or "Prompt failed")
        finally:
            conn.pending_prompts.pop(prompt, None)

    async def set_image(
        self, image: bytes | None, prompt: str | None = None, enhance: bool = True, timeout: float = 30.0
    ) -> None:
        opts: dict[str, Any] = {"timeout": timeout}
        if prompt is not None:
            opts |= {"prompt": prompt, "enhance": enhance}
        await self._manager.set_image(None if image is None else _b64(image), opts)

    def get_connection_state(self) -> str:
        return self._manager.state

    async def disconnect(self) -> None:
        self._buffering = False
        self._buffer.clear()
        await self._manager.cleanup()
