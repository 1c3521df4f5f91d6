"""Session: the one object users hold. Decart's client semantics, for a notebook."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar, get_args

from aiortc import RTCIceServer
from aiortc.mediastreams import MediaStreamTrack
from PIL import Image

from . import _loop, ui_pump
from .checks import check_bool, check_choice, check_ice_servers, check_mapping, check_number
from .engines import Engine, FrameEngine, make_engine
from .engines.events import EngineEvents
from .engines.queue import QueueClock
from .errors import DecartNBError, ErrorCode
from .events import (
    CallbackFailure,
    EventHub,
    EventRecord,
    GenerationEnded,
    GenerationTick,
)
from .images import ImageInput, load_image
from .media.device import DeviceTrack
from .media.frames import to_rgb
from .media.recorder import check_clip_path
from .media.recorder import record as record_clip
from .media.sources import check_source
from .models import ModelSpec, realtime
from .outputs import DEFAULT_OUT_DIR, Label, check_out_dir, mp4_tags, reserve, save_png
from .pipeline import Pipeline
from .rtc.peer import CODECS, KernelPeer, ice_servers_from
from .rtc.peers import CameraNews, PeerSet
from .secret_key import SecretKey, hidden
from .state import GenerationState, validate_enhance, validate_prompt, validate_prompts
from .timeouts import (
    ANSWER_TIMEOUT_S,
    CLOSE_TIMEOUT_S,
    CONNECT_TIMEOUT_S,
    GUARD_MARGIN_S,
    MAX_WAIT_S,
    PROMPT_TIMEOUT_S,
    RECONNECT_GIVE_UP_S,
    SET_TIMEOUT_S,
    STATS_EVERY_S,
    STATS_TIMEOUT_S,
    WAIT_UNTIL_TIMEOUT_S,
)
from .turn import keep_secret

__all__ = ["ConnectionState", "Session"]

ConnectionState = Literal["disconnected", "connecting", "connected", "generating", "reconnecting"]
STATES: tuple[ConnectionState, ...] = get_args(ConnectionState)  # what wait_until accepts
Mirror = bool | Literal["auto"]
P = ParamSpec("P")
R = TypeVar("R")

# Per thread: how deep in public Session calls it is (a call made by another one, save_snapshot's
# snapshot or answer's connect, reports nothing of its own) and whether a view (the panel) made it.
_calls = threading.local()


class _Keep:
    """set_prompt/set_controls: the reference image (and so its name) stays."""


_KEEP = _Keep()


def _reported(method: Callable[Concatenate[Session, P], R]) -> Callable[Concatenate[Session, P], R]:
    """A public call that fails with a DecartNBError emits `call_error` (the error) to the
    session's listeners, so the panel lists errors raised in cells too. Not an `error` event: the
    caller got the exception, and `s.on("error")` callbacks are for failures nobody saw."""

    @functools.wraps(method)
    def call(self: Session, *args: P.args, **kwargs: P.kwargs) -> R:
        depth = getattr(_calls, "depth", 0)
        _calls.depth = depth + 1
        try:
            return method(self, *args, **kwargs)
        except DecartNBError as exc:
            if depth == 0 and not getattr(_calls, "from_view", False):
                self._events.emit("call_error", exc)
            raise
        finally:
            _calls.depth = depth

    return call


class Session:
    """A realtime video session: a source, a model (engine), and the transformed output.

    >>> with Session(source="pattern", prompt="anime") as s:
    ...     s.set_prompt("pencil sketch")
    ...     s.snapshot()
    """

    def __init__(
        self,
        model: str = "lucy-latest",
        *,
        engine: str | Engine | Callable[..., Any] = "local",
        source: Any = "camera",
        mirror: Mirror = False,
        prompt: str | None = None,
        image: ImageInput | None = None,
        enhance: bool = True,
        prompts: Sequence[str] | None = None,
        controls: dict[str, float] | None = None,
        ice_servers: Sequence[Any] | None = None,
        codec: Literal["vp8", "h264"] = "vp8",
        facing_mode: Literal["user", "environment"] = "user",
        frame_stamps: bool | None = None,
        api_key: str | None = None,
        engine_options: dict[str, Any] | None = None,
        out_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        # The key first, as a SecretKey: this frame is in the traceback of every argument error
        # below, and a verbose traceback (%xmode Verbose) prints its variables.
        key = hidden(api_key)
        del api_key
        # TURN usernames and credentials as *** from here on (a displayed `ice_servers` is saved,
        # and a verbose traceback of an argument error below prints this frame's variables).
        ice = keep_secret(ice_servers_from(check_ice_servers(ice_servers)))
        del ice_servers
        self._spec: ModelSpec = realtime(model)
        # Every argument is checked before anything is built: a bad one fails with its code.
        _check_mirror(mirror)
        check_choice("codec", codec, tuple(CODECS))
        check_choice("facing_mode", facing_mode, ("user", "environment"))
        stamps = None if frame_stamps is None else check_bool("frame_stamps", frame_stamps)
        check_source(source)
        if key is not None and not isinstance(key, SecretKey):
            raise DecartNBError(
                ErrorCode.INVALID_API_KEY, f"api_key must be a string, not {type(key).__name__}"
            )
        self.prompts: list[str] = validate_prompts(prompts)
        self._ice_servers = ice
        text = None if prompt is None else validate_prompt(prompt)
        picture = None if image is None else load_image(image)
        enhance = validate_enhance(enhance)
        controls = check_mapping("controls", controls)
        self._out_dir = check_out_dir(DEFAULT_OUT_DIR if out_dir is None else out_dir)
        self._image_name = None if image is None else _image_name(image)
        self._engine: Engine = make_engine(engine, api_key=key, options=engine_options)
        self._source = source
        self.mirror: Mirror = mirror
        self.facing_mode = facing_mode
        self.codec = codec
        if isinstance(self._engine, FrameEngine):
            self._engine.preserve_stamp = stamps if stamps is not None else _named(source, "pattern")
        self._queue_clock = QueueClock()  # a service's queue positions -> the expected wait
        self._engine.listen(_EngineListener(self))
        self._state = self._new_state(
            text, picture, enhance, self._engine.default_controls() | self._engine.check_controls(controls)
        )
        self._events = EventHub()
        self._conn: ConnectionState = "disconnected"
        self._set_lock = threading.Lock()
        # The thread whose set() holds _set_lock: on the main thread it handles widget messages
        # while it waits (ui_pump), and a callback there that set() again would wait for itself.
        self._set_waiter: int | None = None
        self._life_lock = threading.RLock()
        self._pipeline: Pipeline | None = None
        self._peer_set = PeerSet(
            ice_servers=self._ice_servers,
            frames_in=self._frames_in,
            on_camera_track=self._attach_camera,
            on_camera_news=self._camera_news,
        )
        self._camera_facing: str | None = None
        # The page's link (camera widget): transport, kbps, size and fps each way, for `stats`.
        self._link_figures: Callable[[], dict[str, Any]] | None = None
        self._generating_since: float | None = None
        self._tick_task: asyncio.Task[None] | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self._give_up: asyncio.TimerHandle | None = None
        self._holds_loop = False
        self.errors: deque[DecartNBError] = deque(maxlen=50)
        self._views: dict[str, Any] = {}

    # -- what it is -------------------------------------------------------------------------
    @property
    def model(self) -> ModelSpec:
        return self._spec

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def source(self) -> Any:
        return self._source

    @property
    def state(self) -> ConnectionState:
        """One of connecting, connected, generating, reconnecting, disconnected."""
        return self._conn

    @property
    def generation(self) -> GenerationState:
        """The last acknowledged generation state (prompt, image, enhance, controls)."""
        return self._state

    @property
    def out_dir(self) -> Path:
        """Where snapshots (`save_snapshot()`, the panel's Snapshot) and recordings without a
        path go: `out/` in the kernel's working directory (in Jupyter, the notebook's folder)
        unless `Session(out_dir=...)` or `s.out_dir = ...` says otherwise; made absolute when set."""
        return self._out_dir

    @out_dir.setter
    def out_dir(self, folder: str | os.PathLike[str]) -> None:
        self._out_dir = check_out_dir(folder)

    @property
    def callback_failures(self) -> list[CallbackFailure]:
        return list(self._events.failures)

    @property
    def events(self) -> list[EventRecord]:
        """The last events (connection changes, errors, ticks, ...), oldest first, each with its
        time (`at`, time.time()), `name` and `payload`."""
        return self._events.recent()

    def __repr__(self) -> str:
        if "_conn" not in vars(self):  # its __init__ failed: shown by a traceback's variables
            return "<decart_nb.Session (not built)>"
        return (
            f"<decart_nb.Session model={self._spec.name} engine={self._engine.name} "
            f"source={self._source_label()} state={self._conn}>"
        )

    def _source_label(self) -> str:
        return self._source if isinstance(self._source, str) else type(self._source).__name__

    # -- display ----------------------------------------------------------------------------
    @property
    def widget(self) -> Any:
        """The video widget (camera in, transformed video out), created on first use."""
        if "widget" not in self._views:
            from .widgets.camera import CameraWidget

            self._views["widget"] = CameraWidget(self)
        return self._views["widget"]

    @property
    def panel(self) -> Any:
        """The control panel widget, for composing your own layout."""
        if "panel" not in self._views:
            from .widgets.panel import ControlPanel

            self._views["panel"] = ControlPanel(self)
        return self._views["panel"]

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        from .widgets.view import session_view

        return session_view(self)._repr_mimebundle_(**kwargs)

    # -- events -----------------------------------------------------------------------------
    @_reported
    def on(self, event: str, callback: Callable[[Any], Any]) -> None:
        """Call `callback` on `connection_change`, `error` or `generation_tick` (JS names too)."""
        self._events.on(event, callback)

    @_reported
    def off(self, event: str, callback: Callable[[Any], Any] | None = None) -> None:
        self._events.off(event, callback)

    def _set_conn(self, state: ConnectionState) -> None:
        if state == self._conn:
            return  # Decart emits no same-state transitions
        self._conn = state
        self._events.emit("connection_change", state)

    # -- the port: what the widgets, the comm transport and sweeps use ----------------------
    # Documented internals, not for notebooks: the one way other modules reach the session.
    @property
    def ice_servers(self) -> list[RTCIceServer]:
        """The ICE servers the kernel's peers use (the page is given the same, by a comm message):
        SecretIceServers, whose repr hides the TURN username and credential."""
        return list(self._ice_servers)

    @property
    def pipeline(self) -> Pipeline | None:
        """The running media path: loop thread only; None while disconnected."""
        return self._pipeline

    def listen(self, listener: Callable[[str, Any], None]) -> None:
        """Call `listener(event, payload)` for every event, the internal ones too, at once on the
        emitting thread (often the media loop) and never held during connect(): for widgets,
        which only make cheap updates there. Internal events: `stats` (the `stats` dict, once a
        second while connected, from the loop), `generation_change` (the new GenerationState,
        whoever set it), `model_change` (the new ModelSpec), `callback_failure`, `call_error` (the
        DecartNBError a public call from user code raised, on the caller's thread; neither an
        `error` event nor in `errors`, which hold the failures no caller saw), `output_saved` (the
        Path of a snapshot or clip `save_snapshot()` or `record()` just wrote into `out_dir`, on
        the caller's thread)."""
        self._events.watch(listener)

    def unlisten(self, listener: Callable[[str, Any], None]) -> None:
        self._events.unwatch(listener)

    @staticmethod
    @contextlib.contextmanager
    def calls_from_view() -> Iterator[None]:
        """Session calls made in this block (on this thread) are a view's own (the panel's
        buttons and boxes), which shows their failures itself: they emit no `call_error`."""
        before = getattr(_calls, "from_view", False)
        _calls.from_view = True
        try:
            yield
        finally:
            _calls.from_view = before

    def report_error(self, error: DecartNBError) -> None:
        """Record an asynchronous failure and emit it as an `error` event (any thread)."""
        self.errors.append(error)
        self._events.emit("error", error)

    def set_camera_facing(self, facing: object) -> None:
        """Which way the page's camera faces ("user", "environment", anything else: unknown),
        which mirror="auto" follows. Any thread: the pipeline reads it on the loop."""
        value = facing if facing in ("user", "environment") else None
        if self._conn == "disconnected":
            self._camera_facing = value
        else:
            _loop.call_soon(setattr, self, "_camera_facing", value)

    def add_page_stats(self, figures: dict[str, float | None]) -> None:
        """What the page sends, receives and presents, into `stats` as page_* (any thread)."""
        pipeline = self._pipeline
        if pipeline is not None:
            _loop.call_soon(pipeline.stats.on_page, figures)

    def show_link_figures(self, figures: Callable[[], dict[str, Any]] | None) -> None:
        """Loop thread: where `stats` reads the page link's figures (None: no page link)."""
        self._link_figures = figures

    def camera_arrived(self) -> None:
        """Loop thread: the camera's frames arrive (over any transport), so a connecting or
        reconnecting session is connected."""
        if self._conn in ("connecting", "reconnecting"):
            self._cancel_give_up()
            self._set_conn("connected")

    async def close_peer(self, peer: KernelPeer) -> None:
        """Loop thread: close one of the session's peers (a page replaced or dropped it)."""
        await self._peer_set.close(peer)

    def existing_view(self, name: Literal["widget", "panel"]) -> Any | None:
        """The camera widget or the panel if one was built; builds nothing."""
        return self._views.get(name)

    def forget_view(self, view: object) -> None:
        """A widget or panel closed: displaying the session again builds a fresh one."""
        for name, built in list(self._views.items()):
            if built is view:
                del self._views[name]

    # -- lifecycle --------------------------------------------------------------------------
    @_reported
    def connect(self) -> Session:
        """Start the media pipeline. A camera session then waits for the page (or any WebRTC
        client) to offer its camera through `answer()`."""
        _refuse_on_loop("connect")
        with self._life_lock:
            if self._conn != "disconnected":
                return self
            self._connect_locked()
        return self

    def _connect_locked(self) -> None:
        _loop.acquire()
        self._holds_loop = True
        self._events.hold()
        self._queue_clock.reset()
        self._set_conn("connecting")
        try:
            _loop.run(self._start_pipeline(self._spec), timeout=self._guard(self._engine.connect_timeout_s))
        except BaseException as exc:
            self._teardown_sync()
            self._events.release()
            if isinstance(exc, DecartNBError):
                raise exc.with_traceback(None)  # noqa: B904 - from the user's call on: not the loop's frames
            if not isinstance(exc, Exception):
                raise  # the user's Ctrl-C (KeyboardInterrupt) stays one
            raise DecartNBError(
                ErrorCode.ENGINE_ERROR, f"Could not start the session: {exc}", cause=exc
            ) from exc
        _loop.register_closer(self._close_async)
        self._events.release_later()

    async def _start_pipeline(self, spec: ModelSpec) -> None:
        pipeline = Pipeline(
            spec,
            self._engine,
            self._source,
            mirror=self._mirror_now,
            on_frame=self._on_output_frame,
            on_end=self._on_pipeline_end,
        )
        self._pipeline = pipeline
        self._engine.bind(spec)
        await self._engine.apply(self._state)
        await pipeline.start()
        if isinstance(device := pipeline.slot.upstream, DeviceTrack):
            device.watch(self.report_error, lambda: self._camera_news("stalled"))
        if self._stats_task is None:
            self._stats_task = asyncio.get_running_loop().create_task(self._publish_stats())
        if not _named(self._source, "camera"):
            self._set_conn("connected")
        elif (camera := self._peer_set.camera_track()) is not None:
            pipeline.attach_camera(camera)
            self._set_conn("connected")

    @_reported
    def disconnect(self) -> None:
        """Stop everything: the pipeline, every peer, the worker threads. Safe to call twice."""
        _refuse_on_loop("disconnect")  # before any teardown: on the loop it would stop half-way
        if isinstance(self._engine, FrameEngine) and self._engine.in_worker():
            # Called by the model itself: stopping waits for the model to return, so not here.
            self._disconnect_soon("disconnect")
            return
        with self._life_lock:
            if self._conn == "disconnected" and not self._holds_loop:
                return
            self._teardown_sync()

    def _disconnect_soon(self, why: str) -> None:
        """disconnect() in a short-lived thread, for callers that must not wait for it: the media
        loop (disconnect stops the loop's work) and the model's own worker (it waits for the model)."""
        threading.Thread(target=self.disconnect, name=f"decart_nb-{why}", daemon=True).start()

    def _teardown_sync(self) -> None:
        try:
            if self._holds_loop:
                _loop.run(self._close_async(), timeout=CLOSE_TIMEOUT_S)
        finally:
            _loop.unregister_closer(self._close_async)
            self._set_conn("disconnected")
            self._events.close()
            if self._holds_loop:
                self._holds_loop = False
                _loop.release()

    async def _close_async(self) -> None:
        self._stop_ticks()
        if self._stats_task is not None:
            self._stats_task.cancel()
            self._stats_task = None
        if self._give_up is not None:
            self._give_up.cancel()
            self._give_up = None
        await self._peer_set.close_all()
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            await pipeline.stop()

    def __enter__(self) -> Session:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # -- generation state (Decart's set semantics) ------------------------------------------
    @_reported
    def set(self, prompt: str | None = None, image: ImageInput | None = None, enhance: bool = True) -> None:
        """Replace the whole state in one step: a prompt-only set() clears the reference image.
        Waits for the engine's acknowledgement: 30 s (SET_TIMEOUT_S) in all, then
        WEBRTC_TIMEOUT_ERROR naming the new state, and the state is unchanged."""
        if prompt is None and image is None:
            raise DecartNBError(
                ErrorCode.INVALID_INPUT, "At least one of 'prompt' or 'image' must be provided"
            )
        text = None if prompt is None else validate_prompt(prompt)
        flag = validate_enhance(enhance)
        picture = None if image is None else load_image(image)
        name = None if image is None else _image_name(image)
        self._apply(lambda s: (text, picture, flag, s.controls), SET_TIMEOUT_S, "state", name)

    @_reported
    def set_prompt(self, text: str, enhance: bool = True) -> None:
        """Change the prompt only (the reference image stays). Waits for the acknowledgement:
        15 s (PROMPT_TIMEOUT_S) in all, with or without an image, then WEBRTC_TIMEOUT_ERROR
        naming the prompt, and the state is unchanged."""
        prompt = validate_prompt(text)
        flag = validate_enhance(enhance)
        self._apply(lambda s: (prompt, s.image, flag, s.controls), PROMPT_TIMEOUT_S, "prompt")

    @_reported
    def set_image(self, image: ImageInput | None, prompt: str | None = None, enhance: bool = True) -> None:
        """Change (or, with None, clear) the reference image; prompt and enhance only if a
        prompt is given. Waits for the acknowledgement: 30 s (SET_TIMEOUT_S) in all, then
        WEBRTC_TIMEOUT_ERROR naming the image, and the state is unchanged."""
        text = None if prompt is None else validate_prompt(prompt)
        flag = validate_enhance(enhance)  # checked even when unused: a wrong value is a mistake
        picture = None if image is None else load_image(image)
        name = None if image is None else _image_name(image)
        if text is None:
            self._apply(lambda s: (s.prompt, picture, s.enhance, s.controls), SET_TIMEOUT_S, "image", name)
        else:
            self._apply(lambda s: (text, picture, flag, s.controls), SET_TIMEOUT_S, "image", name)

    @_reported
    def set_controls(self, **controls: float) -> None:
        """Set engine controls (e.g. the local model's `strength`); prompt and image stay."""
        checked = self._engine.check_controls(controls)
        self._apply(lambda s: (s.prompt, s.image, s.enhance, s.controls | checked), SET_TIMEOUT_S, "state")

    @property
    def controls(self) -> dict[str, float]:
        return dict(self._state.controls)

    def _new_state(
        self, prompt: str | None, image: Any, enhance: bool, controls: dict[str, float]
    ) -> GenerationState:
        version = getattr(self, "_state", GenerationState()).version + 1
        return GenerationState(prompt, image, enhance, controls, version)

    def _apply(
        self,
        build: Callable[[GenerationState], tuple[Any, Any, bool, dict[str, float]]],
        timeout: float,
        operation: str,
        image_name: str | _Keep | None = _KEEP,
    ) -> None:
        if self._set_waiter == threading.get_ident():  # a widget callback the waiting set() ran
            raise RuntimeError(
                "decart_nb: a widget callback changed the state while a set() in the running cell "
                "waits for its acknowledgement; the callback can start a thread for it instead"
            )
        with self._set_lock:  # concurrent set() calls are applied one after the other
            self._set_waiter = threading.get_ident()
            try:
                self._apply_locked(build, timeout, operation)
                if not isinstance(image_name, _Keep):  # accepted: the labels name the new image
                    self._image_name = image_name
            finally:
                self._set_waiter = None

    def _apply_locked(
        self,
        build: Callable[[GenerationState], tuple[Any, Any, bool, dict[str, float]]],
        timeout: float,
        operation: str,
    ) -> None:
        new = self._new_state(*build(self._state))
        if self._pipeline is None:  # kept for connect(); listeners hear of it now
            self._state = new
            self._events.emit("generation_change", new)
            return
        try:
            wait = self._guard(self._engine.apply_timeout_s, timeout)
            _loop.run(self._apply_on_loop(new, operation, timeout), timeout=wait, pump=True)
        except Exception as exc:
            if isinstance(exc, DecartNBError):
                raise exc.with_traceback(None)  # noqa: B904 - from the user's call on: not the loop's frames
            raise DecartNBError(
                ErrorCode.ENGINE_ERROR, f"The {self._engine.name} engine rejected the state: {exc!r}"
            ) from exc
        self._state = new

    @staticmethod
    def _guard(engine_s: float | None, own_s: float = CONNECT_TIMEOUT_S) -> float:
        """One timeout per call: an engine that times its own calls (Decart's SDK) reports its own
        timeout; the session waits beyond it only to end a call that never returns."""
        return own_s if engine_s is None else engine_s + GUARD_MARGIN_S

    async def _apply_on_loop(self, new: GenerationState, operation: str, timeout: float) -> None:
        # Recorded in the same step as the acknowledgement: a Ctrl-C that lands after the engine
        # took the state but before the caller's thread woke up leaves the two agreeing.
        apply_as = getattr(self._engine, "apply_as", None)  # an engine that times each operation
        if apply_as is not None:
            await apply_as(new, operation, timeout)
        else:
            await self._engine.apply(new)
        self._state = new
        self._events.emit("generation_change", new)

    # -- output -----------------------------------------------------------------------------
    @_reported
    def snapshot(self, timeout: float = 5.0) -> Image.Image:
        """The newest output frame made with the current state, as a PIL image."""
        timeout = check_number("timeout", timeout, 0, MAX_WAIT_S, low_inclusive=False)
        self._refuse_in_model("snapshot")
        pipeline = self._require_pipeline()
        version = self._state.version

        async def grab() -> Any:
            try:
                return await asyncio.wait_for(pipeline.broadcast.next_frame(version), timeout)
            except TimeoutError:
                raise DecartNBError(
                    ErrorCode.FRAME_TIMEOUT,
                    f"No output frame within {timeout} s (state: {self._conn}).{self._not_live_hint()}",
                ) from None

        try:
            frame = _loop.run(grab(), timeout=timeout + 5, pump=True)
        except DecartNBError as exc:
            raise exc.with_traceback(None)  # noqa: B904 - from the user's call on: not the loop's frames
        return Image.fromarray(to_rgb(frame))

    @_reported
    def wait_until(self, state: ConnectionState, timeout: float = WAIT_UNTIL_TIMEOUT_S) -> None:
        """Wait until the connection state is `state`. Returns None: a session returned from a
        cell's last line would be displayed again (a second view of the camera and panel).

        "generating" (output frames are being made) is what a notebook that needs live output
        waits for, e.g. before `snapshot()` in a notebook run top to bottom. "connected" also
        accepts "generating" (a generating session is connected); every other state is waited
        for exactly. On the kernel's main thread the page's widget messages are handled while
        this waits, so the page can connect while the cell runs. Raises DecartNBError:
        WAIT_TIMEOUT after `timeout` seconds, NOT_CONNECTED if the session is disconnected
        while waiting for another state, INVALID_INPUT for an unknown state."""
        if not isinstance(state, str) or state not in STATES:
            raise DecartNBError(
                ErrorCode.INVALID_INPUT, f"state must be one of {', '.join(STATES)}, not {state!r:.40}"
            )
        timeout = check_number("timeout", timeout, 0, MAX_WAIT_S, low_inclusive=False)
        _refuse_on_loop("wait_until")
        self._refuse_in_model("wait_until")
        reached: concurrent.futures.Future[None] = concurrent.futures.Future()
        accepted = ("connected", "generating") if state == "connected" else (state,)

        def watch(event: str, now: Any) -> None:
            if event != "connection_change" or reached.done():
                return
            if now in accepted:
                reached.set_result(None)
            elif now == "disconnected":
                reached.set_exception(self._gone_while_waiting(state))

        self._events.watch(watch)
        try:
            if self._conn not in accepted:
                ui_pump.wait(reached, timeout)
        except concurrent.futures.TimeoutError:
            raise DecartNBError(
                ErrorCode.WAIT_TIMEOUT,
                f"The session was not {state} within {timeout} s (state: {self._conn})."
                + self._not_live_hint(),
            ) from None
        except DecartNBError as exc:
            raise exc.with_traceback(None)  # noqa: B904 - from the user's call on: not the loop's frames
        finally:
            self._events.unwatch(watch)

    def _gone_while_waiting(self, state: str) -> DecartNBError:
        last = self.errors[-1] if self.errors else None
        why = f": {last}" if last is not None else ""
        return DecartNBError(
            ErrorCode.NOT_CONNECTED,
            f"The session was disconnected while waiting for {state!r}{why}",
            cause=last,
        )

    def _not_live_hint(self) -> str:
        """What to try when nothing comes out, for the state the session is in."""
        if self._conn in ("connecting", "reconnecting") and _named(self._source, "camera"):
            return (
                " The page has not connected its camera: is the session displayed (display(s), or s"
                " as a cell's last line), and did the browser allow the camera? Did code that does"
                " not call decart_nb (time.sleep, a long loop) keep the kernel busy? Without"
                " decart_nb_server (Colab, VS Code, a server from another environment) the page's"
                " messages reach the kernel only between cells or while a decart_nb call waits. In a"
                ' notebook run top to bottom, call s.wait_until("generating") before snapshot().'
            )
        if self._conn in ("connecting", "reconnecting"):
            return f" The {self._engine.name} engine is still connecting to its model."
        if self._conn == "connected":
            return " The model has produced no frame yet: is a frame coming in (s.stats: fps_in)?"
        if self._conn == "disconnected":
            return " The session is disconnected: call s.connect() (or display it) first."
        return ""

    @_reported
    def record(self, path: str | os.PathLike[str] | None = None, seconds: float = 5.0) -> Path:
        """Record `seconds` of output to an mp4; returns its path once written. Without `path`
        it goes to `out_dir`, named for the time and the prompt (`s.record(seconds=5)`), never
        replacing a file; `s.record("clip.mp4", 5)` writes (or replaces) that file. Either way the
        mp4's title and comment hold the label: time, prompt, reference image, model."""
        seconds = check_number("seconds", seconds, 0, MAX_WAIT_S, low_inclusive=False)
        clip = None if path is None else check_clip_path(path)
        self._refuse_in_model("record")
        pipeline = self._require_pipeline()
        label = self._label("clip")
        reserved = clip is None
        target = reserve(self._out_dir, label, ".mp4") if clip is None else clip
        try:
            written = _loop.run(
                record_clip(pipeline.broadcast, target, seconds, self._spec.fps, mp4_tags(label)),
                timeout=seconds + 60,
                pump=True,
            )
        except BaseException as exc:
            if reserved:  # the name this call took: no empty or broken file left behind
                target.unlink(missing_ok=True)
            if isinstance(exc, DecartNBError):
                raise exc.with_traceback(None)  # noqa: B904 - from the user's call on: not the loop's frames
            raise
        if written.absolute().is_relative_to(self._out_dir):  # not a file kept elsewhere (a sweep's)
            self._events.emit("output_saved", written)
        return written

    @_reported
    def save_snapshot(self, timeout: float = 5.0) -> Path:
        """`snapshot()` saved as a PNG in `out_dir` (named for the time and the prompt, never
        replacing a file), its label (time, prompt, reference image, model) in the PNG's text
        chunks; returns the path (`PIL.Image.open(path)` gives the image back)."""
        label = self._label("snapshot")  # the state the snapshot waits for: the current one
        path = save_png(self.snapshot(timeout), label, self._out_dir)
        self._events.emit("output_saved", path)
        return path

    def _label(self, kind: Literal["snapshot", "clip"]) -> Label:
        state = self._state
        image = None if state.image is None else self._image_name or "image"
        return Label.now(kind, state.prompt, image, self._spec.name)

    @property
    def stats(self) -> dict[str, Any]:
        """fps in/out, kernel latency p50/p95 (ms), dropped frames, and the session's state; with a
        camera widget, its page's `transport` ("webrtc", "codec": VP8 without WebRTC, "jpeg": JPEG
        frames) and, without WebRTC, `transport_{kbps,fps,width,height}_{in,out}`; with "codec",
        the `pipe` ("comm" or "socket": the page socket; `transport_pipe` is its deprecated name)."""
        pipeline = self._pipeline
        base: dict[str, Any] = {
            "state": self._conn,
            "model": self._spec.name,
            "state_version": self._state.version,
        }
        if pipeline is None or not self._holds_loop:
            return base

        async def read() -> dict[str, Any]:
            return self._stats_now()

        return _loop.run(read(), timeout=STATS_TIMEOUT_S)

    def _stats_now(self) -> dict[str, Any]:
        """Loop thread: what `stats` returns."""
        base: dict[str, Any] = {
            "state": self._conn,
            "model": self._spec.name,
            "state_version": self._state.version,
        }
        if self._pipeline is None:
            return base
        seconds = 0.0 if self._generating_since is None else time.perf_counter() - self._generating_since
        link = self._link_figures() if self._link_figures is not None else {}
        return base | self._pipeline.stats.snapshot() | {"generating_seconds": round(seconds, 1)} | link

    async def _publish_stats(self) -> None:
        """Push, not poll: the stats go to listeners once a second while connected."""
        while True:
            if self._pipeline is not None:
                self._events.emit("stats", self._stats_now())
            await asyncio.sleep(STATS_EVERY_S)

    def _refuse_in_model(self, method: str) -> None:
        """These calls wait for the model's own output (or for the model to stop): from inside
        the model function they could only time out."""
        if isinstance(self._engine, FrameEngine) and self._engine.in_worker():
            raise RuntimeError(
                f"decart_nb: {method}() waits for the model's output, so it cannot be called from "
                "inside the model function; call it from a cell or another thread"
            )

    def _require_pipeline(self) -> Pipeline:
        if self._pipeline is None:
            raise DecartNBError(ErrorCode.NOT_CONNECTED, "The session is not connected: call connect() first")
        return self._pipeline

    # -- model switch -----------------------------------------------------------------------
    @_reported
    def switch_model(self, name: str) -> None:
        """Move to another model: a new pipeline at the new model's size and fps (and new camera
        constraints for the page); prompt, image and controls carry over."""
        self._refuse_in_model("switch_model")
        spec = realtime(name)
        # Serialized with set(): the new pipeline applies self._state, which an in-flight set()
        # would otherwise overwrite in the session but not in the engine.
        with self._set_lock:
            if self._pipeline is None:
                self._spec = spec
                return
            try:
                _loop.run(self._switch(spec), timeout=self._guard(self._engine.connect_timeout_s))
            except DecartNBError as exc:
                raise exc.with_traceback(None)  # noqa: B904 - from the user's call on: not the loop's frames

    async def _switch(self, spec: ModelSpec) -> None:
        self._stop_ticks()
        self._set_conn("connecting")
        old = self._pipeline
        if old is not None:
            await old.stop()
        self._spec = spec
        await self._start_pipeline(spec)
        assert self._pipeline is not None
        self._peer_set.replace_output(self._pipeline.subscribe)
        self._events.emit("model_change", spec)

    # -- signaling ----------------------------------------------------------------------------
    @_reported
    def answer(self, offer_sdp: str, timeout: float = ANSWER_TIMEOUT_S) -> str:
        """Answer a WebRTC offer (the page's, or any client's). A camera session takes the
        offer's video as its source; every peer receives the output. Returns the answer SDP,
        which carries all of the kernel's ICE candidates."""
        if not isinstance(offer_sdp, str) or "m=video" not in offer_sdp:
            raise DecartNBError(
                ErrorCode.WEBRTC_SIGNALING_ERROR, "The offer must be SDP with a video section"
            )
        self.connect()
        try:
            peer = _loop.run(self.answer_async(offer_sdp), timeout=timeout)
        except DecartNBError as exc:
            raise exc.with_traceback(None)  # noqa: B904 - from the user's call on: not the loop's frames
        return peer.answer_sdp

    async def answer_async(self, offer_sdp: str) -> KernelPeer:
        """answer() for code already on the media loop (the widget's message handler): returns
        the peer it made, whose `answer_sdp` goes back to the offerer."""
        pipeline = self._require_pipeline()
        return await self._peer_set.answer(
            offer_sdp,
            codec=self.codec,
            output=pipeline.subscribe(),
            take_camera=_named(self._source, "camera"),
        )

    def _attach_camera(self, track: MediaStreamTrack) -> None:
        if self._pipeline is not None:
            self._pipeline.attach_camera(track)

    def _frames_in(self) -> int:
        return 0 if self._pipeline is None else self._pipeline.stats.frames_in

    def _camera_news(self, news: CameraNews) -> None:
        """What the peer set saw on the camera peer, as the session's state: at once, instead of
        after ICE's 30 s consent expiry for a peer gone without a goodbye."""
        if news == "connected":
            self.camera_arrived()
        elif news == "lost":
            self.peer_lost()
        elif news == "stalled" and self._conn == "generating" and not self._engine.owns_connection_state:
            self._stop_ticks()
            self._set_conn("connected")  # connected, but nothing to transform
        elif news == "flowing" and self._conn == "reconnecting":
            self._cancel_give_up()
            self._set_conn("connected")  # the same peer was heard from again

    def peer_lost(self) -> None:
        """The camera's connection dropped: report `reconnecting` and wait for a new offer
        (the page retries by itself); give up with an error after RECONNECT_GIVE_UP_S."""
        if self._conn in ("disconnected", "reconnecting"):
            return
        self._stop_ticks()
        self._set_conn("reconnecting")
        loop = asyncio.get_running_loop()
        self._cancel_give_up()
        self._give_up = loop.call_later(RECONNECT_GIVE_UP_S, self._reconnect_failed)

    def _cancel_give_up(self) -> None:
        if self._give_up is not None:
            self._give_up.cancel()
            self._give_up = None

    def _reconnect_failed(self) -> None:
        self._give_up = None
        if self._conn != "reconnecting":
            return
        self.report_error(
            DecartNBError(
                ErrorCode.WEBRTC_ICE_ERROR,
                "The camera connection dropped and was not re-established within "
                f"{RECONNECT_GIVE_UP_S:.0f} s",
            )
        )
        self._disconnect_soon("giveup")

    # -- loop-side callbacks --------------------------------------------------------------------
    def _mirror_now(self) -> bool:
        return self.mirror is True or (self.mirror == "auto" and self._camera_facing == "user")

    def _on_engine_state(self, state: str) -> None:
        if state != "disconnected":
            self._set_conn(state)  # type: ignore[arg-type]
        elif self._conn != "disconnected":  # the engine gave up reconnecting (error already reported)
            self._disconnect_soon("engine-lost")

    def _on_engine_tick(self, seconds: float) -> None:
        self._events.emit("generation_tick", GenerationTick(seconds=seconds))

    def _on_engine_queue(self, position: int, queue_size: int) -> None:
        # A QueuePosition with decart_nb's estimate of the wait (engines/queue.py).
        self._events.emit("queue_position", self._queue_clock.update(position, queue_size))

    def _on_engine_ended(self, seconds: int, reason: str) -> None:
        self._events.emit("generation_ended", GenerationEnded(seconds=seconds, reason=reason))

    def _on_output_frame(self) -> None:
        if self._conn == "connected" and not self._engine.owns_connection_state:
            self._set_conn("generating")
            self._generating_since = time.perf_counter()
            self._tick_task = asyncio.get_running_loop().create_task(self._ticks())

    async def _ticks(self) -> None:
        start = self._generating_since or time.perf_counter()
        n = 0
        while self._conn == "generating":
            n += 1
            await asyncio.sleep(max(0.0, start + n - time.perf_counter()))
            if self._conn == "generating":
                self._events.emit("generation_tick", GenerationTick(seconds=float(n)))

    def _stop_ticks(self) -> None:
        if self._tick_task is not None:
            self._tick_task.cancel()
            self._tick_task = None
        self._generating_since = None

    def _on_pipeline_end(self, error: BaseException | None) -> None:
        if error is not None:
            self.report_error(
                error
                if isinstance(error, DecartNBError)
                else DecartNBError(
                    ErrorCode.ENGINE_ERROR, f"The media pipeline stopped: {error}", cause=error
                )
            )
        if self._conn != "disconnected":
            self._disconnect_soon("ended")


class _EngineListener(EngineEvents):
    """The Session's ear on its engine: errors always; the service's own states, billed ticks
    and queue only from an engine that owns its connection state (Decart's cloud)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._owns = session.engine.owns_connection_state

    def error(self, error: DecartNBError) -> None:
        self._session.report_error(error)

    def connection_change(self, state: str) -> None:
        if self._owns:
            self._session._on_engine_state(state)

    def generation_tick(self, seconds: float) -> None:
        if self._owns:
            self._session._on_engine_tick(seconds)

    def queue_position(self, position: int, size: int) -> None:
        if self._owns:
            self._session._on_engine_queue(position, size)

    def generation_ended(self, seconds: int, reason: str) -> None:
        if self._owns:
            self._session._on_engine_ended(seconds, reason)


def _check_mirror(mirror: object) -> None:
    if isinstance(mirror, bool) or (isinstance(mirror, str) and mirror == "auto"):
        return  # (`1 in (True, False)` is True: the type is checked, not equality)
    raise DecartNBError(ErrorCode.INVALID_INPUT, f"mirror must be True, False or 'auto', not {mirror!r:.40}")


def _refuse_on_loop(method: str) -> None:
    if _loop.in_loop_thread():
        raise RuntimeError(f"decart_nb: {method}() blocks, so it cannot be called from the media loop")


def _image_name(image: object) -> str:
    """A reference image's name for labels: its file's, an upload's (`name`), or "image"."""
    if isinstance(image, (str, os.PathLike)):
        return Path(image).name or "image"
    name = getattr(image, "filename" if isinstance(image, Image.Image) else "name", None)
    return Path(name).name if isinstance(name, str) and name else "image"


def _named(source: object, name: str) -> bool:
    """A source given by name ("camera", "pattern"); arrays and paths compare safely."""
    return isinstance(source, str) and source == name
