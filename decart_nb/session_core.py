"""What the parts of a Session share: its model, engine and source, its connection state and
generation state, its events and errors, and the running pipeline. One object, owned by the
Session; its parts (session_life.py, session_peers.py, session_ticks.py, session_apply.py,
session_outputs.py) and its port (session_port.py) each hold it."""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeAlias, TypeVar, get_args, overload

import numpy as np
from aiortc import RTCIceServer
from PIL import Image

from . import _loop
from .engines import Engine, FrameEngine
from .errors import DecartNBError, ErrorCode
from .events import EventHub
from .models import ModelSpec
from .outputs import Label
from .pipeline import Pipeline
from .state import GenerationState
from .timeouts import CONNECT_TIMEOUT_S, GUARD_MARGIN_S

__all__ = [
    "STATES",
    "ConnectionState",
    "LinkFigures",
    "Mirror",
    "SessionCore",
    "Shared",
    "Source",
    "Stats",
    "check_mirror",
    "image_name",
    "refuse_on_loop",
]

ConnectionState = Literal["disconnected", "connecting", "connected", "generating", "reconnecting"]
STATES: tuple[ConnectionState, ...] = get_args(ConnectionState)  # what wait_until accepts
Mirror: TypeAlias = bool | Literal["auto"]
#: What a Session takes as its source (media/sources.py checks it and makes the track).
Source: TypeAlias = str | os.PathLike[str] | Image.Image | np.ndarray | Iterable[np.ndarray]
#: `Session.stats`: numbers, a few names ("state", "model", "transport", "pipe") and None for what
#: is not measured. Any (one of the exceptions the report lists): user code does arithmetic on the
#: numbers, which a union with str would refuse; a TypedDict of every figure is the way out.
Stats: TypeAlias = dict[str, Any]
#: The page link's part of `stats` (the camera widget's): transport, pipe, kbps, sizes, fps.
LinkFigures: TypeAlias = dict[str, float | str | None]


class SessionCore:
    """The state every part of one Session reads and writes (see the module's docstring)."""

    def __init__(
        self,
        spec: ModelSpec,
        engine: Engine,
        source: Source,
        *,
        ice_servers: list[RTCIceServer],
        mirror: Mirror,
        facing_mode: str,
        codec: str,
        out_dir: Path,
    ) -> None:
        self.spec = spec
        self.engine = engine
        self.source = source
        self.ice_servers = ice_servers
        self.mirror: Mirror = mirror
        self.facing_mode = facing_mode
        self.codec = codec
        self.out_dir = out_dir  # where snapshots and recordings without a path go
        self.events = EventHub()
        self.conn: ConnectionState = "disconnected"
        self.state = GenerationState()
        self.image_name: str | None = None  # the reference image's, for labels
        self.pipeline: Pipeline | None = None  # loop thread only; None while disconnected
        self.holds_loop = False
        self.errors: deque[DecartNBError] = deque(maxlen=50)
        self.camera_facing: str | None = None  # the page camera's, which mirror="auto" follows
        # The page's link (camera widget): transport, kbps, size and fps each way, for `stats`.
        self.link_figures: Callable[[], LinkFigures] | None = None
        # The Session's own disconnect(), for the parts that must stop it from another thread.
        self.disconnect: Callable[[], None] = lambda: None

    # -- state -------------------------------------------------------------------------------
    def set_conn(self, state: ConnectionState) -> None:
        if state == self.conn:
            return  # Decart emits no same-state transitions
        self.conn = state
        self.events.emit("connection_change", state)

    def new_state(
        self, prompt: str | None, image: np.ndarray | None, enhance: bool, controls: dict[str, float]
    ) -> GenerationState:
        return GenerationState(prompt, image, enhance, controls, self.state.version + 1)

    def report_error(self, error: DecartNBError) -> None:
        """Record an asynchronous failure and emit it as an `error` event (any thread)."""
        self.errors.append(error)
        self.events.emit("error", error)

    def disconnect_soon(self, why: str) -> None:
        """disconnect() in a short-lived thread, for callers that must not wait for it: the media
        loop (disconnect stops the loop's work) and the model's own worker (it waits for the model)."""
        threading.Thread(target=self.disconnect, name=f"decart_nb-{why}", daemon=True).start()

    # -- questions ---------------------------------------------------------------------------
    def is_camera(self) -> bool:
        """A camera session: the page's (or a WebRTC client's) camera is the source."""
        return named(self.source, "camera")

    def mirror_now(self) -> bool:
        return self.mirror is True or (self.mirror == "auto" and self.camera_facing == "user")

    def label(self, kind: Literal["snapshot", "clip"]) -> Label:
        state = self.state
        image = None if state.image is None else self.image_name or "image"
        return Label.now(kind, state.prompt, image, self.spec.name)

    def require_pipeline(self) -> Pipeline:
        if self.pipeline is None:
            raise DecartNBError(ErrorCode.NOT_CONNECTED, "The session is not connected: call connect() first")
        return self.pipeline

    def refuse_in_model(self, method: str) -> None:
        """These calls wait for the model's own output (or for the model to stop): from inside
        the model function they could only time out."""
        if isinstance(self.engine, FrameEngine) and self.engine.in_worker():
            raise RuntimeError(
                f"decart_nb: {method}() waits for the model's output, so it cannot be called from "
                "inside the model function; call it from a cell or another thread"
            )

    @staticmethod
    def guard(engine_s: float | None, own_s: float = CONNECT_TIMEOUT_S) -> float:
        """One timeout per call: an engine that times its own calls (Decart's SDK) reports its own
        timeout; the session waits beyond it only to end a call that never returns."""
        return own_s if engine_s is None else engine_s + GUARD_MARGIN_S


T = TypeVar("T")


class _HasCore(Protocol):
    _core: SessionCore


class Shared(Generic[T]):
    """A Session attribute users may set (mirror, facing_mode, codec) that its parts read: kept on
    the SessionCore, so the parts need no reference to the Session."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, session: None, owner: type) -> Shared[T]: ...
    @overload
    def __get__(self, session: _HasCore, owner: type) -> T: ...
    def __get__(self, session: _HasCore | None, owner: type) -> T | Shared[T]:
        if session is None:
            return self
        value: T = getattr(session._core, self._name)
        return value

    def __set__(self, session: _HasCore, value: T) -> None:
        setattr(session._core, self._name, value)


def check_mirror(mirror: object) -> None:
    if isinstance(mirror, bool) or (isinstance(mirror, str) and mirror == "auto"):
        return  # (`1 in (True, False)` is True: the type is checked, not equality)
    raise DecartNBError(ErrorCode.INVALID_INPUT, f"mirror must be True, False or 'auto', not {mirror!r:.40}")


def refuse_on_loop(method: str) -> None:
    if _loop.in_loop_thread():
        raise RuntimeError(f"decart_nb: {method}() blocks, so it cannot be called from the media loop")


def image_name(image: object) -> str:
    """A reference image's name for labels: its file's, an upload's (`name`), or "image"."""
    if isinstance(image, (str, os.PathLike)):
        return Path(image).name or "image"
    name = getattr(image, "filename" if isinstance(image, Image.Image) else "name", None)
    return Path(name).name if isinstance(name, str) and name else "image"


def named(source: object, name: str) -> bool:
    """A source given by name ("camera", "pattern"); arrays and paths compare safely."""
    return isinstance(source, str) and source == name
