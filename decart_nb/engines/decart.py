"""engine="decart": Decart's cloud realtime models, through Decart's official Python SDK.

The input track is fed into the SDK's local (LiveKit) track, the SDK's remote track comes back
as the output track, and a GenerationState becomes Decart's set / set_prompt / set_image calls.
The API key stays in this object (as a SecretKey) and is redacted from every error it raises.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..errors import DecartNBError, ErrorCode
from ..images import encode_jpeg
from ..media.frames import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, FrameMeta, meta_of, recv_video
from ..media.relay import MailboxTrack
from ..models import ModelSpec, realtime
from ..state import GenerationState
from .base import Engine
from .decart_errors import translate
from .decart_sdk import DecartSDK, LocalFeed, guard_sdk_logs, load_sdk, resolve_key

__all__ = ["DecartEngine", "SET_TIMEOUT_S", "PROMPT_TIMEOUT_S"]

logger = logging.getLogger("decart_nb")

SET_TIMEOUT_S = 30.0  # Decart: set() and set_image() wait 30 s for the acknowledgement
PROMPT_TIMEOUT_S = 15.0  # Decart: set_prompt() waits 15 s for the echo


def _ignore(_value: Any) -> None:
    return None


class DecartEngine(Engine):
    """Decart's cloud. `api_key` (or DECART_API_KEY) is required; `model` is normally bound by
    the Session; `sdk` is the seam the tests use (a fake with the real SDK's behaviour)."""

    name = "decart"
    #: The session takes connection states and generation ticks from this engine's hooks.
    owns_connection_state = True
    set_timeout_s = SET_TIMEOUT_S
    prompt_timeout_s = PROMPT_TIMEOUT_S

    def __init__(
        self,
        api_key: str | None = None,
        *,
        model: str | ModelSpec | None = None,
        sdk: DecartSDK | None = None,
    ) -> None:
        self._key = resolve_key(api_key)
        self._sdk = sdk if sdk is not None else load_sdk()
        guard_sdk_logs()
        self._spec: ModelSpec | None = realtime(model) if isinstance(model, str) else model
        #: Hooks for the session, called on the media loop.
        self.on_connection_change: Callable[[str], None] = _ignore
        self.on_generation_tick: Callable[[float], None] = _ignore
        #: The SDK's connection state, as last reported.
        self.state = "disconnected"
        self._applied = GenerationState()  # the state Decart acknowledged (or gets at connect)
        self._frames_version = -1  # the state version output frames are stamped with
        self._client: Any = None
        self._feed: LocalFeed | None = None
        self._output: _OutputTrack | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._lock = asyncio.Lock()
        self._connected = asyncio.Event()
        self._connected.set()
        self._live = False  # False while the SDK replays the events it buffered during connect
        self._stopping = False
        self._t0 = time.perf_counter()
        self._last_t_in = 0.0

    def __repr__(self) -> str:
        model = self._spec.name if self._spec is not None else None
        return f"<DecartEngine model={model} state={self.state}>"

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
        self._stopping, self._live = False, False
        # Fresh per connect: asyncio primitives bind to the loop that first waits on them.
        self._lock, self._connected = asyncio.Lock(), asyncio.Event()
        self._output = _OutputTrack()
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
        client.on("connection_change", self._on_sdk_state)
        client.on("error", self._on_sdk_error)
        client.on("generation_tick", self._on_sdk_tick)
        self.state = "connected"
        self._frames_version = self._applied.version
        # The SDK replays its connect-time events on the next loop turn; this runs after them.
        asyncio.get_running_loop().call_soon(self._go_live)
        return self._output

    async def _connect(self, spec: ModelSpec, feed: LocalFeed) -> Any:
        from .. import __version__

        error: DecartNBError | None = None
        try:
            options = self._sdk.connect_options(
                model=self._sdk.model(spec.name),
                on_remote_stream=self._on_remote_stream,
                initial_state=self._initial_state(self._applied),
            )
            return await self._sdk.connect(
                base_url=self._sdk.base_url,
                api_key=self._key.reveal(),
                local_track=feed.track,
                options=options,
                integration=f"decart_nb/{__version__}",
            )
        except Exception as exc:  # noqa: BLE001 - translated below, outside the except (no key in __context__)
            error = translate(exc, f"connect to Decart ({spec.name})", self._sdk, self._key)
        raise error

    def _initial_state(self, state: GenerationState) -> Any:
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
        client, self._client = self._client, None
        feed, self._feed = self._feed, None
        output, self._output = self._output, None
        self.state = "disconnected"
        if client is not None:
            await self._quietly(client.disconnect(), "disconnect from Decart")
        if feed is not None:
            await self._quietly(feed.close(), "close the LiveKit source")
        if output is not None:
            output.stop()

    async def _quietly(self, call: Coroutine[Any, Any, Any], doing: str) -> None:
        try:
            await call
        except Exception as exc:  # noqa: BLE001 - teardown goes on; the failure is reported
            error = translate(exc, doing, self._sdk, self._key)
            logger.warning("decart_nb: %s", error)
            self.on_error(error)

    def _spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        old = self._tasks.pop(name, None)
        if old is not None:
            old.cancel()
        self._tasks[name] = asyncio.get_running_loop().create_task(coro, name=f"decart_nb-{name}")

    # -- generation state ---------------------------------------------------------------------
    async def apply(self, state: GenerationState) -> None:
        await self._connected.wait()  # a set() racing connect goes out after the initial state
        if self._client is None:
            self._applied = state  # sent as the initial state of the next connect
            return
        if self.state in ("reconnecting", "disconnected"):
            raise DecartNBError(
                ErrorCode.NOT_CONNECTED,
                f"Decart's connection is {self.state}: the state was not changed. Once it is back, "
                "the latest state is restored by itself; set this one again then.",
            )
        async with self._lock:
            await self._send(state, self._applied)
            self._applied = state
            if self.state != "reconnecting":
                self._frames_version = state.version

    async def _send(self, new: GenerationState, old: GenerationState | None) -> None:
        """One SDK call for the whole state; raises a DecartNBError and changes nothing on failure."""
        client, sdk = self._client, self._sdk
        if client is None:
            raise DecartNBError(ErrorCode.NOT_CONNECTED, "Not connected to Decart")
        same_image = old is not None and new.image is old.image
        if same_image and old is not None and (new.prompt, new.enhance) == (old.prompt, old.enhance):
            return  # nothing Decart knows about changed
        call: Coroutine[Any, Any, Any]
        if new.is_passthrough:
            call, timeout, what = client.set_image(None), self.set_timeout_s, "passthrough"
        elif same_image and new.image is not None and new.prompt is not None:
            # The image stays: the prompt alone, acknowledged by its echo.
            call = client.set_prompt(new.prompt, enhance=new.enhance)
            timeout, what = self.prompt_timeout_s, "prompt"
        else:
            # Decart's set(): one atomic replace; a prompt-only set clears the reference image.
            image = None if new.image is None else encode_jpeg(new.image)
            call = client.set(sdk.set_input(prompt=new.prompt, image=image, enhance=new.enhance))
            timeout, what = self.set_timeout_s, "new state"
        error: DecartNBError | None = None
        try:
            await asyncio.wait_for(call, timeout)
        except asyncio.TimeoutError:
            error = DecartNBError(
                ErrorCode.WEBRTC_TIMEOUT_ERROR,
                f"Decart did not acknowledge the {what} within {timeout:g} s; the state is unchanged",
                data={"timeout_s": timeout},
            )
        except Exception as exc:  # noqa: BLE001 - translated below, outside the except
            error = translate(exc, f"apply the {what}", sdk, self._key)
        if error is not None:
            raise error

    async def _restore(self) -> None:
        """After the SDK reconnected (Decart is back in passthrough): send the latest state."""
        try:
            async with self._lock:
                state = self._applied
                if not state.is_passthrough:
                    await self._send(state, None)
                self._frames_version = state.version
        except DecartNBError as error:
            self.on_error(
                DecartNBError(
                    error.code,
                    f"Reconnected, but could not restore the prompt/image: {error.message}",
                    data=error.data,
                    cause=error,
                )
            )

    # -- SDK events (on the loop) ------------------------------------------------------------
    def _go_live(self) -> None:
        self._live = True

    def _on_sdk_state(self, state: str) -> None:
        if self._stopping:
            return
        if not self._live and state != "generating":
            return  # replayed connect-time states (failed attempts too): the session reports its own
        previous, self.state = self.state, state
        if previous == state:
            return
        if state == "reconnecting":
            self._frames_version = -1  # frames are passthrough until the state is restored
        elif state in ("connected", "generating") and previous == "reconnecting":
            self._spawn("restore", self._restore())
        self.on_connection_change(state)

    def _on_sdk_error(self, error: BaseException) -> None:
        if self._stopping:
            return
        translated = translate(error, "stream", self._sdk, self._key, event=True)
        if not self._live or self.state == "reconnecting":
            # Each failed attempt raises one; the connect's outcome or the reconnect's last (after
            # `disconnected`) is what counts, as Decart documents it.
            logger.info("decart_nb: a connection attempt failed: %s", translated)
            return
        self.on_error(translated)

    def _on_sdk_tick(self, message: Any) -> None:
        if not self._stopping:
            self.on_generation_tick(float(message.seconds))

    def _on_remote_stream(self, remote: Any) -> None:
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
            self.on_error(translate(exc, "send video to Decart", self._sdk, self._key))
        if self._output is not None:
            self._output.box.close()

    async def _read(self, remote: Any) -> None:
        try:
            async for frame in self._sdk.media.remote_frames(remote):
                output = self._output
                if output is None:
                    return
                output.box.put(self._stamp(frame))
        except Exception as exc:  # noqa: BLE001 - reported; a reconnect brings a new remote track
            self.on_error(translate(exc, "receive video from Decart", self._sdk, self._key))

    def _stamp(self, frame: av.VideoFrame) -> av.VideoFrame:
        # Decart does not say which input an output frame was made from: latency counts from the
        # newest input handed to the SDK, a lower bound of the true glass-to-glass figure.
        now = time.perf_counter()
        t_in = self._last_t_in or now
        frame.pts = int((now - self._t0) * VIDEO_CLOCK_RATE)
        frame.time_base = VIDEO_TIME_BASE
        frame.opaque = FrameMeta(t_in=t_in, version=self._frames_version, model_ms=(now - t_in) * 1000.0)
        return frame


class _OutputTrack(MailboxTrack):
    """Decart's frames as an aiortc track; one slot, so a slow consumer only ever sees the newest."""
