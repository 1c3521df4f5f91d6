"""Session: the one object users hold. Decart's client semantics, for a notebook. It checks what
users pass and forwards to its parts, one concern each around one SessionCore (session_*.py: life,
peers, ticks, apply, outputs, and the port its widgets use), so tab completion shows the user's API."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

from aiortc import RTCIceServer
from PIL import Image

from . import _loop, session_core
from .checks import check_bool, check_choice, check_ice_servers, check_mapping
from .engines import Engine, FrameEngine, make_engine
from .errors import DecartNBError, ErrorCode
from .events import CallbackFailure, EventCallback, EventRecord
from .images import ImageInput, load_image
from .media.sources import check_source
from .models import ModelSpec, realtime
from .outputs import DEFAULT_OUT_DIR, check_out_dir, save_png
from .rtc.peer import CODECS, ice_servers_from
from .secret_key import SecretKey, hidden
from .session_apply import Applier
from .session_calls import reported
from .session_core import ConnectionState, Mirror, SessionCore, Shared, Source, Stats
from .session_life import Life
from .session_outputs import Outputs
from .session_peers import CameraPeers
from .session_port import SessionPort
from .session_ticks import Ticks
from .state import GenerationState, validate_enhance, validate_prompt, validate_prompts
from .timeouts import ANSWER_TIMEOUT_S, PROMPT_TIMEOUT_S, SET_TIMEOUT_S, WAIT_UNTIL_TIMEOUT_S
from .turn import keep_secret

if TYPE_CHECKING:
    from .widgets.camera import CameraWidget
    from .widgets.panel import ControlPanel

__all__ = ["ConnectionState", "Session"]


class Session:
    """A realtime video session: a source, a model (engine), and the transformed output.

    >>> with Session(source="pattern", prompt="anime") as s:
    ...     s.set_prompt("pencil sketch")
    ...     s.snapshot()
    """

    mirror: Shared[Mirror] = Shared()  # True, False or "auto" (follow the page camera's facing)
    facing_mode: Shared[str] = Shared()  # the page camera to ask for: "user" or "environment"
    codec: Shared[str] = Shared()  # the WebRTC video codec: "vp8" or "h264"

    def __init__(
        self,
        model: str = "lucy-latest",
        *,
        engine: str | Engine | Callable[..., object] = "local",  # a function: fn(frame, state)
        source: object = "camera",  # a Source: check_source says which kind, or INVALID_INPUT
        mirror: Mirror = False,
        prompt: str | None = None,
        image: ImageInput | None = None,
        enhance: bool = True,
        prompts: Sequence[str] | None = None,
        controls: Mapping[str, float] | None = None,
        ice_servers: Sequence[RTCIceServer | str | Mapping[str, object]] | None = None,
        codec: Literal["vp8", "h264"] = "vp8",
        facing_mode: Literal["user", "environment"] = "user",
        frame_stamps: bool | None = None,
        api_key: str | None = None,
        engine_options: Mapping[str, object] | None = None,
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
        spec = realtime(model)
        # Every argument is checked before anything is built: a bad one fails with its code.
        session_core.check_mirror(mirror)
        check_choice("codec", codec, tuple(CODECS))
        check_choice("facing_mode", facing_mode, ("user", "environment"))
        stamps = None if frame_stamps is None else check_bool("frame_stamps", frame_stamps)
        check_source(source)
        if key is not None and not isinstance(key, SecretKey):
            raise DecartNBError(
                ErrorCode.INVALID_API_KEY, f"api_key must be a string, not {type(key).__name__}"
            )
        self.prompts: list[str] = validate_prompts(prompts)
        text = None if prompt is None else validate_prompt(prompt)
        picture = None if image is None else load_image(image)
        enhance = validate_enhance(enhance)
        checked = check_mapping("controls", controls)
        folder = check_out_dir(DEFAULT_OUT_DIR if out_dir is None else out_dir)
        made = make_engine(engine, api_key=key, options=engine_options)
        if isinstance(made, FrameEngine):
            made.preserve_stamp = stamps if stamps is not None else session_core.named(source, "pattern")
        core = SessionCore(
            spec,
            made,
            cast(Source, source),  # checked above
            ice_servers=ice,
            mirror=mirror,
            facing_mode=facing_mode,
            codec=codec,
            out_dir=folder,
        )
        core.image_name = None if image is None else session_core.image_name(image)
        core.state = core.new_state(
            text, picture, enhance, made.default_controls() | made.check_controls(checked)
        )
        core.disconnect = self.disconnect
        self._core = core
        self._ticks = Ticks(core)
        self._peers = CameraPeers(core, self._ticks)
        self._life = Life(core, self._ticks, self._peers)
        self._applier = Applier(core)
        self._outputs = Outputs(core)
        self._port = SessionPort(self, core, self._peers)

    # -- what it is -------------------------------------------------------------------------
    @property
    def model(self) -> ModelSpec:
        return self._core.spec

    @property
    def engine(self) -> Engine:
        return self._core.engine

    @property
    def source(self) -> Source:
        return self._core.source

    @property
    def ice_servers(self) -> list[RTCIceServer]:
        """The ICE servers given, as SecretIceServers (their repr hides TURN credentials)."""
        return list(self._core.ice_servers)

    @property
    def state(self) -> ConnectionState:
        """One of connecting, connected, generating, reconnecting, disconnected."""
        return self._core.conn

    @property
    def generation(self) -> GenerationState:
        """The last acknowledged generation state (prompt, image, enhance, controls)."""
        return self._core.state

    @property
    def controls(self) -> dict[str, float]:
        return dict(self._core.state.controls)

    @property
    def out_dir(self) -> Path:
        """Where snapshots (`save_snapshot()`, the panel's Snapshot) and recordings without a
        path go: `out/` in the kernel's working directory (in Jupyter, the notebook's folder)
        unless `Session(out_dir=...)` or `s.out_dir = ...` says otherwise; made absolute when set."""
        return self._core.out_dir

    @out_dir.setter
    def out_dir(self, folder: str | os.PathLike[str]) -> None:
        self._core.out_dir = check_out_dir(folder)

    @property
    def errors(self) -> deque[DecartNBError]:
        """The last 50 asynchronous failures (those no caller saw), oldest first."""
        return self._core.errors

    @property
    def callback_failures(self) -> list[CallbackFailure]:
        return list(self._core.events.failures)

    @property
    def events(self) -> list[EventRecord]:
        """The last events (connection changes, errors, ticks, ...), oldest first, each with its
        time (`at`, time.time()), `name` and `payload`."""
        return self._core.events.recent()

    @property
    def stats(self) -> Stats:
        """fps in/out, kernel latency p50/p95 (ms), dropped frames, and the session's state; with a
        camera widget, its page's `transport` ("webrtc", "codec": VP8 without WebRTC, "jpeg": JPEG
        frames) and, without WebRTC, `transport_{kbps,fps,width,height}_{in,out}`; with "codec",
        the `pipe` ("comm" or "socket": the page socket; `transport_pipe` is its deprecated name)."""
        return self._ticks.read()

    def __repr__(self) -> str:
        if "_port" not in vars(self):  # its __init__ failed: shown by a traceback's variables
            return "<decart_nb.Session (not built)>"
        src = self.source if isinstance(self.source, str) else type(self.source).__name__
        model, engine = self.model.name, self.engine.name
        return f"<decart_nb.Session model={model} engine={engine} source={src} state={self.state}>"

    # -- display ----------------------------------------------------------------------------
    @property
    def widget(self) -> CameraWidget:
        """The video widget (camera in, transformed video out), created on first use."""
        return self._port.widget()

    @property
    def panel(self) -> ControlPanel:
        """The control panel widget, for composing your own layout."""
        return self._port.panel()

    def _repr_mimebundle_(self, **kwargs: object) -> object:
        from .widgets.view import session_view

        return session_view(self)._repr_mimebundle_(**kwargs)

    # -- events -----------------------------------------------------------------------------
    @reported
    def on(self, event: str, callback: EventCallback) -> None:
        """Call `callback` on `connection_change`, `error` or `generation_tick` (JS names too)."""
        self._core.events.on(event, callback)

    @reported
    def off(self, event: str, callback: EventCallback | None = None) -> None:
        self._core.events.off(event, callback)

    # -- lifecycle --------------------------------------------------------------------------
    @reported
    def connect(self) -> Session:
        """Start the media pipeline. A camera session then waits for the page (or any WebRTC
        client) to offer its camera through `answer()`."""
        session_core.refuse_on_loop("connect")
        self._life.connect()
        return self

    @reported
    def disconnect(self) -> None:
        """Stop everything: the pipeline, every peer, the worker threads. Safe to call twice."""
        session_core.refuse_on_loop("disconnect")  # before any teardown: on the loop it would stop half-way
        self._life.disconnect()

    def __enter__(self) -> Session:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    @reported
    def switch_model(self, name: str) -> None:
        """Move to another model: a new pipeline at the new model's size and fps (and new camera
        constraints for the page); prompt, image and controls carry over."""
        core = self._core
        core.refuse_in_model("switch_model")
        spec = realtime(name)
        # Serialized with set(): the new pipeline applies the state, which an in-flight set()
        # would otherwise overwrite in the session but not in the engine.
        with self._applier.lock:
            if core.pipeline is None:
                core.spec = spec
                return
            try:
                _loop.run(self._life.switch(spec), timeout=core.guard(core.engine.connect_timeout_s))
            except DecartNBError as exc:
                raise exc.with_traceback(None)  # noqa: B904 - from the user's call on: not the loop's frames

    @reported
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
            peer = _loop.run(self._peers.answer(offer_sdp), timeout=timeout)
        except DecartNBError as exc:
            raise exc.with_traceback(None)  # noqa: B904 - from the user's call on: not the loop's frames
        return peer.answer_sdp

    # -- generation state (Decart's set semantics) ------------------------------------------
    @reported
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
        name = None if image is None else session_core.image_name(image)
        self._applier.apply(lambda s: (text, picture, flag, s.controls), SET_TIMEOUT_S, "state", name)

    @reported
    def set_prompt(self, text: str, enhance: bool = True) -> None:
        """Change the prompt only (the reference image stays). Waits for the acknowledgement:
        15 s (PROMPT_TIMEOUT_S) in all, with or without an image, then WEBRTC_TIMEOUT_ERROR
        naming the prompt, and the state is unchanged."""
        prompt = validate_prompt(text)
        flag = validate_enhance(enhance)
        self._applier.apply(lambda s: (prompt, s.image, flag, s.controls), PROMPT_TIMEOUT_S, "prompt")

    @reported
    def set_image(self, image: ImageInput | None, prompt: str | None = None, enhance: bool = True) -> None:
        """Change (or, with None, clear) the reference image; prompt and enhance only if a
        prompt is given. Waits for the acknowledgement: 30 s (SET_TIMEOUT_S) in all, then
        WEBRTC_TIMEOUT_ERROR naming the image, and the state is unchanged."""
        text = None if prompt is None else validate_prompt(prompt)
        flag = validate_enhance(enhance)  # checked even when unused: a wrong value is a mistake
        picture = None if image is None else load_image(image)
        name = None if image is None else session_core.image_name(image)
        if text is None:
            self._applier.apply(
                lambda s: (s.prompt, picture, s.enhance, s.controls), SET_TIMEOUT_S, "image", name
            )
        else:
            self._applier.apply(lambda s: (text, picture, flag, s.controls), SET_TIMEOUT_S, "image", name)

    @reported
    def set_controls(self, /, **controls: float) -> None:
        """Set engine controls (e.g. the local model's `strength`); prompt and image stay."""
        checked = self._core.engine.check_controls(controls)
        self._applier.apply(
            lambda s: (s.prompt, s.image, s.enhance, s.controls | checked), SET_TIMEOUT_S, "state"
        )

    # -- output -----------------------------------------------------------------------------
    @reported
    def snapshot(self, timeout: float = 5.0) -> Image.Image:
        """The newest output frame made with the current state, as a PIL image."""
        return self._outputs.snapshot(timeout)

    @reported
    def save_snapshot(self, timeout: float = 5.0) -> Path:
        """`snapshot()` saved as a PNG in `out_dir` (named for the time and the prompt, never
        replacing a file), its label (time, prompt, reference image, model) in the PNG's text
        chunks; returns the path (`PIL.Image.open(path)` gives the image back)."""
        label = self._core.label("snapshot")  # the state the snapshot waits for: the current one
        path = save_png(self.snapshot(timeout), label, self._core.out_dir)
        self._core.events.emit("output_saved", path)
        return path

    @reported
    def record(
        self,
        path: str | os.PathLike[str] | None = None,
        seconds: float = 5.0,
        what: Literal["output", "input", "both"] = "output",
    ) -> Path:
        """Record `seconds` to an mp4; returns its path once written. Without `path` it goes to
        `out_dir`, named for the time and the prompt (`s.record(seconds=5)`), never replacing a
        file; `s.record("clip.mp4", 5)` writes (or replaces) that file. Either way the mp4's title
        and comment hold the label: time, prompt, reference image, model; its description says
        what it holds.

        `what`: "output" (the model's output), "input" (the frames going into the model, as it
        sees them: mirrored if mirroring is on; in a camera session, the camera), or "both": one
        mp4 with two video streams, stream 0 the input and stream 1 the output (titled "input"
        and "output"). In out_dir an input clip is named `....input.mp4`, both `....both.mp4`.
        Each frame keeps its time (the input: when it reached the model's slot; the output: when
        it came out), counted from the first frame recorded, so the clip is variable-frame-rate
        where the camera was; as `source=` (or in `sweep(sources=[...])`) it replays the same
        frames at the same times. Raises DecartNBError: INVALID_INPUT (bad path, seconds or
        what), FRAME_TIMEOUT when no frame arrived."""
        return self._outputs.record(path, seconds, what)

    @reported
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
        self._outputs.wait_until(state, timeout)
