"""engine="decart": Decart's cloud realtime models, through Decart's official Python SDK.

The input track is fed into the SDK's local (LiveKit) track, the SDK's remote track comes back
as the output track, and a GenerationState becomes Decart's set / set_prompt / set_image calls.
The API key stays in this object (as a SecretKey) and is redacted from every error it raises.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Coroutine, Mapping
from typing import Protocol, TypedDict

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ...errors import DecartNBError, ErrorCode
from ...images import encode_jpeg
from ...media.frames import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, FrameMeta, meta_of, recv_video
from ...media.relay import MailboxTrack
from ...models import ModelSpec, realtime
from ...state import GenerationState
from ...timeouts import (
    DECART_BACKSTOP_S,
    DECART_CONNECT_TIMEOUT_S,
    DECART_FRAME_SETTLE_S,
    DECART_RESTORE_GRACE_S,
    PROMPT_TIMEOUT_S,
    SET_TIMEOUT_S,
)
from ..base import Engine
from ..events import EngineEvents
from .errors import ends_for_good, translate
from .sdk import (
    DecartSDK,
    LocalFeed,
    QueueMessage,
    RealtimeSession,
    SecretKey,
    guard_sdk_logs,
    load_sdk,
    resolve_base_url,
    resolve_key,
)

__all__ = ["CODECS", "OPTIONS", "RESOLUTIONS", "SPEEDS", "DecartEngine", "DecartOptions", "read_remote"]

logger = logging.getLogger("decart_nb")

RESOLUTIONS = ("720p", "1080p")
SPEEDS = ("fast",)
CODECS = ("h264", "vp9")


class DecartOptions(TypedDict, total=False):
    """DecartEngine's connect options, also Session(engine="decart", engine_options={...})."""

    resolution: str | None
    speed: str | None
    codec: str
    base_url: str | None
    restart_billed_session: bool


OPTIONS = tuple(DecartOptions.__annotations__)
#: What a `set*()` call changes, named in its timeout's message: the session's set_prompt(),
#: set_image() and set() (set_controls() too: nothing of it reaches Decart).
OPERATIONS = {"prompt": "the new prompt", "image": "the new image", "state": "the new state"}
#: generation_ended's reason when the account has no credits left (a new session is refused too).
NO_CREDITS_REASON = "insufficient_credits"


def _one_of(name: str, value: object, allowed: tuple[str, ...], or_none: str = "") -> str:
    if isinstance(value, str) and value in allowed:
        return value
    raise DecartNBError(
        ErrorCode.INVALID_INPUT,
        f"{name} must be {' or '.join(repr(a) for a in allowed)}{or_none}, not {value!r:.40}",
    )


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> str | None:
    return None if value is None else _one_of(name, value, allowed, " (or None)")


class DecartEngine(Engine):
    """Decart's cloud. `api_key` (or DECART_API_KEY) is required; `model` is normally bound by
    the Session; `base_url` (or DECART_REALTIME_BASE_URL) points at another realtime endpoint;
    `resolution` ("720p"/"1080p"), `speed` ("fast") and `codec` ("h264"/"vp9") are Decart's
    connect options; `sdk` is the seam the unit tests use.

    When Decart ends the server session (generation_ended, e.g. its time limit), the engine
    reports it (a SESSION_ENDED error with the reason) and disconnects: with
    `restart_billed_session=True` the SDK's reconnect starts a new server session instead, which
    Decart bills as a new one. Running out of credits (INSUFFICIENT_CREDITS) and a refused key
    (INVALID_API_KEY) always end the connection at once, without a retry."""

    name = "decart"
    #: The session takes connection states and generation ticks from this engine's hooks.
    owns_connection_state = True
    set_timeout_s = SET_TIMEOUT_S
    prompt_timeout_s = PROMPT_TIMEOUT_S
    backstop_s = DECART_BACKSTOP_S
    frame_settle_s = DECART_FRAME_SETTLE_S
    #: The longest apply() can take: one operation's limit (apply_as), the longest of them.
    apply_timeout_s = max(SET_TIMEOUT_S, PROMPT_TIMEOUT_S)
    connect_timeout_s = DECART_CONNECT_TIMEOUT_S

    def __init__(
        self,
        api_key: str | SecretKey | None = None,
        *,
        model: str | ModelSpec | None = None,
        sdk: DecartSDK | None = None,
        base_url: str | None = None,
        resolution: str | None = None,
        speed: str | None = None,
        codec: str = "h264",
        restart_billed_session: bool = False,
    ) -> None:
        self._key = resolve_key(api_key)
        del api_key  # this frame is in the traceback of the checks below: no raw key in it
        self.resolution = _choice("resolution", resolution, RESOLUTIONS)
        self.speed = _choice("speed", speed, SPEEDS)
        self.codec = _one_of("codec", codec, CODECS)
        if not isinstance(restart_billed_session, bool):
            raise DecartNBError(ErrorCode.INVALID_INPUT, "restart_billed_session must be True or False")
        #: After Decart ends a server session (its time limit): start a new, billed, one?
        self.restart_billed_session = restart_billed_session
        self._sdk = sdk if sdk is not None else load_sdk()
        self.base_url = resolve_base_url(base_url, self._sdk.base_url)
        guard_sdk_logs()
        self._spec: ModelSpec | None = realtime(model) if isinstance(model, str) else model
        #: The SDK's connection state, as last reported.
        self.state = "disconnected"
        #: Decart's id of the current server session, and the token a viewer subscribes with.
        self.session_id: str | None = None
        self.subscribe_token: str | None = None
        self._applied = GenerationState()  # the state Decart acknowledged (or gets at connect)
        self._frames_version = -1  # the state version output frames are stamped with
        self._next_version, self._next_at = -1, 0.0  # ... and from when on (0: none waiting)
        self._client: RealtimeSession | None = None
        self._feed: LocalFeed | None = None
        self._output: MailboxTrack | None = None  # one slot: a slow consumer sees the newest
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._lock = asyncio.Lock()
        self._connected = asyncio.Event()
        self._connected.set()
        self._settled = asyncio.Event()  # set while no drop is waiting for its restore
        self._sessions = 0  # server sessions started by this connect (1 + one per reconnect)
        self._unrestored = False  # a restore failed: Decart holds passthrough, not _applied
        self._live = False  # False while the SDK replays the events it buffered during connect
        self._stopping = False
        self._ending: asyncio.Task[None] | None = None  # closing the SDK's client after an ending
        self._t0 = time.perf_counter()
        self._last_t_in = 0.0

    def __repr__(self) -> str:
        # getattr: a traceback's variables show this object half-built when __init__ fails
        spec, state = getattr(self, "_spec", None), getattr(self, "state", None)
        return f"<DecartEngine model={spec.name if spec is not None else None} state={state}>"

    def bind(self, spec: ModelSpec) -> None:
        """The model the next start() connects to (the Session calls this)."""
        self._spec = spec

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self, source: MediaStreamTrack) -> MediaStreamTrack:
        if self._spec is None:
            raise DecartNBError(
                ErrorCode.INVALID_INPUT, "DecartEngine has no model: pass model=... or use it in a Session"
            )
        if self._client is not None:
            await self.stop()
        spec = self._spec
        self._stopping, self._live, self._sessions, self._unrestored = False, False, 0, False
        # Fresh per connect: asyncio primitives bind to the loop that first waits on them.
        self._lock, self._connected, self._settled = asyncio.Lock(), asyncio.Event(), asyncio.Event()
        self._settled.set()
        self._output = MailboxTrack()
        self._feed = feed = self._sdk.media.open_local(spec.width, spec.height)
        self._spawn("pump", self._forward(source, feed))
        try:
            client = await self._connect(spec, feed)
        except BaseException:
            await self.stop()
            raise
        finally:
            self._connected.set()
        self._client = client
        self.subscribe_token = getattr(client, "subscribe_token", None)  # set by the SDK as it connected
        client.on("connection_change", self._on_sdk_state)
        client.on("error", self._on_sdk_error)
        client.on("generation_tick", self._on_sdk_tick)
        self.state = "connected"
        self._stamp_now(self._applied.version)  # the first frames come after connect's own ack
        # The SDK replays its connect-time events on the next loop turn; this runs after them.
        asyncio.get_running_loop().call_soon(self._go_live)
        return self._output

    async def _connect(self, spec: ModelSpec, feed: LocalFeed) -> RealtimeSession:
        from ... import __version__

        error: DecartNBError | None = None
        try:
            options = self._sdk.connect_options(
                model=self._sdk.model(spec.name),
                on_remote_stream=self._on_remote_stream,
                initial_state=self._initial_state(self._applied),
                resolution=self.resolution,
                preferred_video_codec=self.codec,
                speed=self.speed,
            )
            return await self._sdk.connect(
                self.base_url,
                self._key.reveal(),
                feed.track,
                options,
                integration=f"decart_nb/{__version__}",
                on_session_started=self._on_session_started,
                on_queue_position=self._on_queue_position,
                on_generation_ended=self._on_generation_ended,
            )
        except Exception as exc:  # noqa: BLE001 - translated below, outside the except (no key in __context__)
            error = translate(exc, f"connect to Decart ({spec.name})", self._sdk, self._key)
        raise error

    def _initial_state(self, state: GenerationState) -> object:
        if state.is_passthrough:
            return None
        prompt = None if state.prompt is None else self._sdk.prompt(text=state.prompt, enhance=state.enhance)
        image = None if state.image is None else encode_jpeg(state.image)
        return self._sdk.model_state(prompt=prompt, image=image)

    async def stop(self) -> None:
        self._stopping = True
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        ending, self._ending = self._ending, None
        if ending is not None:
            await asyncio.gather(ending, return_exceptions=True)  # it reports its own failure
        client, self._client = self._client, None
        feed, self._feed = self._feed, None
        output, self._output = self._output, None
        self.state = "disconnected"
        self.session_id = self.subscribe_token = None
        if client is not None:
            await self._quietly(client.disconnect(), "disconnect from Decart")
        if feed is not None:
            await self._quietly(feed.close(), "close the LiveKit source")
        if output is not None:
            output.stop()

    async def _quietly(self, call: Awaitable[object], doing: str) -> None:
        try:
            await call
        except Exception as exc:  # noqa: BLE001 - teardown goes on; the failure is reported
            error = translate(exc, doing, self._sdk, self._key)
            logger.warning("decart_nb: %s", error)
            self.events.error(error)

    def _spawn(self, name: str, coro: Coroutine[object, object, None]) -> None:
        old = self._tasks.pop(name, None)
        if old is not None:
            old.cancel()
        self._tasks[name] = asyncio.get_running_loop().create_task(coro, name=f"decart_nb-{name}")

    # -- generation state ---------------------------------------------------------------------
    async def apply(self, state: GenerationState) -> None:
        await self.apply_as(state, "state")

    async def apply_as(self, state: GenerationState, operation: str, timeout_s: float | None = None) -> None:
        """Send `state` for one of the session's operations (OPERATIONS): it gets one limit in
        all, `timeout_s` (the session's: 15 s for a prompt, 30 s otherwise), whatever SDK call
        carries it and including a wait for a restore after a drop; the error names it."""
        limit = timeout_s if timeout_s is not None else self._limit(operation)
        await self._connected.wait()  # a set() racing connect goes out after the initial state
        if self._client is None:
            self._applied = state  # sent as the initial state of the next connect
            return
        deadline = asyncio.get_running_loop().time() + limit
        await self._wait_settled(deadline)
        error: DecartNBError | None = None
        try:
            async with asyncio.timeout_at(deadline):
                async with self._lock:
                    # After a failed restore Decart holds passthrough: the whole state goes out again.
                    await self._send(state, None if self._unrestored else self._applied)
                    self._applied, self._unrestored = state, False
                    self._stamp_later(state.version)
        except TimeoutError:
            error = _timed_out(operation, limit, None)
        except DecartNBError as exc:
            if exc.code != ErrorCode.WEBRTC_TIMEOUT_ERROR:
                raise
            error = _timed_out(operation, limit, exc)  # the SDK's own timer went first: same words
        if error is not None:
            raise error

    def _limit(self, operation: str) -> float:
        return self.prompt_timeout_s if operation == "prompt" else self.set_timeout_s

    async def _wait_settled(self, deadline: float) -> None:
        """Refuse while Decart is away; once it reports itself back, wait for the restore
        (until the operation's deadline)."""
        if not self._settled.is_set() and self._live_now():
            try:
                async with asyncio.timeout_at(deadline):
                    await self._settled.wait()
            except TimeoutError:
                pass
        if self._settled.is_set() and not self._stopping:
            return
        if self._stopping:
            raise DecartNBError(ErrorCode.NOT_CONNECTED, "Decart's session ended: the state is unchanged.")
        where = (
            "is back, but the latest state is still being restored"
            if self._live_now()
            else (f"is {self.state} after a drop")
        )
        raise DecartNBError(
            ErrorCode.NOT_CONNECTED,
            f"Decart's connection {where}: the state was not changed. Once it is back, the latest "
            "state is restored by itself; set this one again then.",
        )

    def _live_now(self) -> bool:
        return self.state in ("connected", "generating")

    async def _send(self, new: GenerationState, old: GenerationState | None) -> None:
        """One SDK call for the whole state; raises a DecartNBError and changes nothing on failure.
        The caller bounds it (apply_as: the operation's limit; a restore: the SDK's, plus a backstop)."""
        client, sdk = self._client, self._sdk
        if client is None:
            raise DecartNBError(ErrorCode.NOT_CONNECTED, "Not connected to Decart")
        same_image = old is not None and new.image is old.image
        if same_image and old is not None and (new.prompt, new.enhance) == (old.prompt, old.enhance):
            return  # nothing Decart knows about changed
        what = "new state"
        if new.is_passthrough:
            what = "passthrough"
        elif same_image and new.image is not None and new.prompt is not None:
            what = "prompt"
        elif new.prompt is None:
            what = "image"
        error: DecartNBError | None = None
        try:
            await self._call(client, new, what)
        except Exception as exc:  # noqa: BLE001 - translated below, outside the except
            error = translate(exc, f"apply the {what}", sdk, self._key)
        if error is not None:
            raise error

    def _call(self, client: RealtimeSession, new: GenerationState, what: str) -> Awaitable[None]:
        """The SDK call for a state (built here, so the SDK's input validation is translated too)."""
        if (
            what == "prompt" and new.prompt is not None
        ):  # the image stays: the prompt alone, acked by its echo
            return client.set_prompt(new.prompt, enhance=new.enhance)
        image = None if new.image is None else encode_jpeg(new.image)
        if new.prompt is None:  # passthrough, or an image alone: the prompt goes as an explicit null
            image_only = self._sdk.image_only
            return image_only(client, image) if image_only is not None else client.set_image(image)
        # Decart's set(): one atomic replace; a prompt-only set clears the reference image.
        return client.set(self._sdk.set_input(prompt=new.prompt, image=image, enhance=new.enhance))

    async def _restore(self, session: int) -> None:
        """Decart came back in passthrough, its own passthrough acknowledged: send the latest state."""
        try:
            async with self._lock:
                state = self._applied
                if not state.is_passthrough:
                    await self._bounded_send(state)
                self._unrestored = False
                self._stamp_later(state.version)
        except DecartNBError as error:
            if session != self._sessions or self._stopping:
                return  # overtaken by another drop: that session restores
            # Sets may go on (each sends the whole state); frames stay unstamped meanwhile.
            self._unrestored = True
            self._settled.set()
            # A restore cut off by the next drop is not news: report only once that is clear.
            later = asyncio.get_running_loop().call_later
            later(DECART_RESTORE_GRACE_S, self._report_unrestored, session, error)
            return
        if session == self._sessions:
            self._settled.set()

    async def _bounded_send(self, state: GenerationState) -> None:
        """A restore: the SDK times its ack (30 s at most); the backstop ends a call that hangs."""
        limit = self.set_timeout_s + self.backstop_s
        try:
            async with asyncio.timeout(limit):
                await self._send(state, None)
                return
        except TimeoutError:
            pass
        raise _timed_out("state", limit, None)

    def _report_unrestored(self, session: int, error: DecartNBError) -> None:
        if session != self._sessions or self._stopping or self.state not in ("connected", "generating"):
            return
        message = f"Reconnected, but could not restore the prompt/image: {error.message}"
        self.events.error(DecartNBError(error.code, message, data=error.data, cause=error))

    # -- SDK events (on the loop) ------------------------------------------------------------
    def _go_live(self) -> None:
        self._live = True

    def _on_session_started(self, info: object) -> None:
        """The SDK finished a connection (its own initial state or passthrough acknowledged)."""
        self._sessions += 1
        self.session_id = getattr(info, "session_id", None)
        client = self._client
        self.subscribe_token = getattr(client, "subscribe_token", None) if client is not None else None
        # The first session got its state from connect (as do the connect's own retries, before
        # the client is ours); a reconnect's session starts in passthrough.
        if self._sessions > 1 and self._client is not None and not self._stopping:
            self._spawn("restore", self._restore(self._sessions))

    def _on_sdk_state(self, state: str) -> None:
        if self._stopping:
            return
        if not self._live and state != "generating":
            return  # replayed connect-time states (failed attempts too): the session reports its own
        previous, self.state = self.state, state
        if state not in ("connected", "generating"):
            self._settled.clear()  # a drop (or a retry): sets wait until the state is restored
            self._stamp_now(-1)  # frames are passthrough until the state is restored
        if previous != state:
            self.events.connection_change(state)

    def _on_sdk_error(self, error: BaseException) -> None:
        if self._stopping:
            return
        translated = translate(error, "stream", self._sdk, self._key, event=True)
        if self._live and ends_for_good(translated):
            self._end(translated)  # no reconnect can help: stop the SDK's before it starts
            return
        if not self._live or (self.state != "disconnected" and not self._settled.is_set()):
            # Each failed attempt raises one; the connect's outcome or the reconnect's last (after
            # `disconnected`) is what counts, as Decart documents it.
            logger.info("decart_nb: a connection attempt failed: %s", translated)
            return
        self.events.error(translated)

    def _on_sdk_tick(self, message: _TickMessage) -> None:
        if not self._stopping:
            self.events.generation_tick(int(message.seconds))  # whole seconds, as the SDK's message

    def _on_queue_position(self, message: QueueMessage) -> None:
        if not self._stopping:
            self.events.queue_position(int(message.position), int(message.queue_size))

    def _on_generation_ended(self, message: Mapping[str, object]) -> None:
        if self._stopping:
            return
        seconds, reason = _whole(message.get("seconds", 0)), str(message.get("reason", ""))
        self.events.generation_ended(seconds, reason)
        if self._client is None:
            return  # during connect: the connect's own outcome says what happened
        if reason == NO_CREDITS_REASON:
            self._end(_ended(ErrorCode.INSUFFICIENT_CREDITS, reason, seconds))
        elif self.restart_billed_session:
            logger.info("decart_nb: Decart ended the session (%s); starting a new, billed one", reason)
        else:
            self._end(_ended(ErrorCode.SESSION_ENDED, reason, seconds))

    def _end(self, error: DecartNBError) -> None:
        """A permanent ending: one error, `disconnected`, and the SDK's client closed at once, so
        its reconnect (which would retry, or start a new billed session) never runs."""
        self._stopping = True  # the SDK's own news of this ending (its error, the drop) is not news
        self.state = "disconnected"
        self._settled.set()  # a set() waiting for a restore fails now (not connected)
        self.events.error(error)
        self.events.connection_change("disconnected")
        client = self._client
        if client is not None and self._ending is None:
            # A task, not awaited here: this runs inside the SDK's message handler.
            self._ending = asyncio.get_running_loop().create_task(
                self._quietly(client.disconnect(), "close Decart's connection"), name="decart_nb-end"
            )

    def _on_remote_stream(self, remote: object) -> None:
        # A reconnect brings a new remote track: read the newest one only.
        self._spawn("reader", self._read(remote))

    # -- media ------------------------------------------------------------------------------
    async def _forward(self, source: MediaStreamTrack, feed: LocalFeed) -> None:
        try:
            while True:
                frame = await recv_video(source)
                self._last_t_in = meta_of(frame).t_in
                feed.push(frame)
        except MediaStreamError:
            pass  # the source ended, and with it the output
        except Exception as exc:  # noqa: BLE001 - reported; the output ends so the session sees it
            self.events.error(translate(exc, "send video to Decart", self._sdk, self._key))
        if self._output is not None:
            self._output.box.close()

    async def _read(self, remote: object) -> None:
        await read_remote(self, remote, "receive video from Decart")

    def _stamp_now(self, version: int) -> None:
        self._frames_version, self._next_at = version, 0.0

    def _stamp_later(self, version: int) -> None:
        """Frames Decart made before it acknowledged a state can arrive after the ack (they were
        in the network or LiveKit's jitter buffer): the new version goes on frames that arrive
        `frame_settle_s` after it, so a snapshot after set_prompt() shows the new prompt."""
        self._next_version, self._next_at = version, time.perf_counter() + self.frame_settle_s

    def _stamp(self, frame: av.VideoFrame) -> av.VideoFrame:
        # Decart does not say which input an output frame was made from: latency counts from the
        # newest input handed to the SDK, a lower bound of the true glass-to-glass figure.
        now = time.perf_counter()
        if self._next_at and now >= self._next_at:
            self._frames_version, self._next_at = self._next_version, 0.0
        t_in = self._last_t_in or now
        frame.pts = int((now - self._t0) * VIDEO_CLOCK_RATE)
        frame.time_base = VIDEO_TIME_BASE
        frame.opaque = FrameMeta(t_in=t_in, version=self._frames_version, model_ms=(now - t_in) * 1000.0)
        return frame


class _Receiver(Protocol):
    """What read_remote uses of the engine or the viewer."""

    _sdk: DecartSDK
    _key: SecretKey
    _output: MailboxTrack | None
    events: EngineEvents

    def _stamp(self, frame: av.VideoFrame) -> av.VideoFrame: ...


class _TickMessage(Protocol):
    """The SDK's generation_tick message."""

    @property
    def seconds(self) -> float: ...


async def read_remote(engine: _Receiver, remote: object, doing: str) -> None:
    """Put each frame of Decart's remote track into the engine's output (newest wins) until the
    output goes away; a failure is reported (a reconnect brings a new remote track). Shared by
    the engine and the viewer, which hold `_sdk`, `_key`, `_output` and `_stamp` alike."""
    try:
        async for frame in engine._sdk.media.remote_frames(remote):
            output = engine._output
            if output is None:
                return
            output.box.put(engine._stamp(frame))
    except Exception as exc:  # noqa: BLE001 - reported as an error event, the session goes on
        engine.events.error(translate(exc, doing, engine._sdk, engine._key))


def _timed_out(operation: str, limit: float, sdk_error: DecartNBError | None) -> DecartNBError:
    """One message per operation, whichever timer ran out (decart_nb's or the SDK's)."""
    data: dict[str, object] = {"operation": operation, "timeout_s": limit}
    if sdk_error is not None:
        data |= {k: v for k, v in sdk_error.data.items() if k in ("sdk_error", "sdk_cause")}
    return DecartNBError(
        ErrorCode.WEBRTC_TIMEOUT_ERROR,
        f"Decart did not acknowledge {OPERATIONS.get(operation, 'the new state')} within {limit:g} s; "
        "the state is unchanged",
        data=data,
    )


def _whole(value: object) -> int:
    """A message's number of seconds as whole seconds (0 when it has none)."""
    return int(value) if isinstance(value, (int, float, str)) else 0


def _ended(code: str, reason: str, seconds: int) -> DecartNBError:
    if code == ErrorCode.INSUFFICIENT_CREDITS:
        why = "the account has no credits left (not retried: add credits, then connect again)"
    elif reason == "timeout":
        why = "the session reached its time limit"
    else:
        why = f"reason {reason!r}"
    return DecartNBError(
        code,
        f"Decart ended the session after {seconds} s: {why}. Nothing more is billed; s.connect() starts "
        "a new (billed) session.",
        data={"reason": reason, "seconds": seconds},
    )
