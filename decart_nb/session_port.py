"""The Session as its widgets see it: a typed port, so the Session a user holds shows only what
users call. The camera widget, its frame links and the panel receive a SessionPort (sweeps reach
one through `port_of`); none of them touches a private member of the Session (tests/
test_architecture.py). For user-level calls (connect, set, state, ...) the port hands out the
Session itself (`port.session`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, overload

from aiortc import RTCIceServer

from . import _loop
from .errors import DecartNBError
from .events import EventWatcher
from .pipeline import Pipeline
from .rtc.peer import KernelPeer
from .session_calls import calls_from_view
from .session_core import LinkFigures, SessionCore
from .session_peers import CameraPeers

if TYPE_CHECKING:
    from .session import Session
    from .widgets.camera import CameraWidget
    from .widgets.panel import ControlPanel

__all__ = ["SessionPort", "port_of"]


class SessionPort:
    """What the widgets use of one Session. Documented internals, not for notebooks."""

    calls_from_view = staticmethod(calls_from_view)

    def __init__(self, session: Session, core: SessionCore, peers: CameraPeers) -> None:
        self._session = session
        self._core = core
        self._peers = peers
        self._widget: CameraWidget | None = None
        self._panel: ControlPanel | None = None

    @property
    def session(self) -> Session:
        """The user's Session: what a view does that users can do too goes through it."""
        return self._session

    @property
    def ice_servers(self) -> list[RTCIceServer]:
        """The ICE servers the kernel's peers use (the page is given the same, by a comm message):
        SecretIceServers, whose repr hides the TURN username and credential."""
        return list(self._core.ice_servers)

    @property
    def pipeline(self) -> Pipeline | None:
        """The running media path: loop thread only; None while disconnected."""
        return self._core.pipeline

    # -- events --------------------------------------------------------------------------------
    def listen(self, listener: EventWatcher) -> None:
        """Call `listener(event, payload)` for every event, the internal ones too, at once on the
        emitting thread (often the media loop) and never held during connect(): for widgets,
        which only make cheap updates there. Internal events: `stats` (the `stats` dict, once a
        second while connected, from the loop), `generation_change` (the new GenerationState,
        whoever set it), `model_change` (the new ModelSpec), `callback_failure`, `call_error` (the
        DecartNBError a public call from user code raised, on the caller's thread; neither an
        `error` event nor in `errors`, which hold the failures no caller saw), `output_saved` (the
        Path of a snapshot or clip `save_snapshot()` or `record()` just wrote into `out_dir`, on
        the caller's thread)."""
        self._core.events.watch(listener)

    def unlisten(self, listener: EventWatcher) -> None:
        self._core.events.unwatch(listener)

    def report_error(self, error: DecartNBError) -> None:
        """Record an asynchronous failure and emit it as an `error` event (any thread)."""
        self._core.report_error(error)

    # -- the page ------------------------------------------------------------------------------
    def set_camera_facing(self, facing: object) -> None:
        """Which way the page's camera faces ("user", "environment", anything else: unknown),
        which mirror="auto" follows. Any thread: the pipeline reads it on the loop."""
        value = facing if isinstance(facing, str) and facing in ("user", "environment") else None
        if self._core.conn == "disconnected":
            self._core.camera_facing = value
        else:
            _loop.call_soon(setattr, self._core, "camera_facing", value)

    def add_page_stats(self, figures: dict[str, float | None]) -> None:
        """What the page sends, receives and presents, into `stats` as page_* (any thread)."""
        pipeline = self._core.pipeline
        if pipeline is not None:
            _loop.call_soon(pipeline.stats.on_page, figures)

    def show_link_figures(self, figures: Callable[[], LinkFigures] | None) -> None:
        """Loop thread: where `stats` reads the page link's figures (None: no page link)."""
        self._core.link_figures = figures

    # -- the camera's connection (loop thread) ---------------------------------------------------
    def camera_arrived(self) -> None:
        """The camera's frames arrive (over any transport), so a connecting or reconnecting
        session is connected."""
        self._peers.camera_arrived()

    def peer_lost(self) -> None:
        """The camera's connection dropped: `reconnecting` until a new offer, or an error after
        RECONNECT_GIVE_UP_S."""
        self._peers.peer_lost()

    async def answer_async(self, offer_sdp: str) -> KernelPeer:
        """Session.answer() for code on the media loop (the widget's message handler): returns
        the peer it made, whose `answer_sdp` goes back to the offerer."""
        return await self._peers.answer(offer_sdp)

    async def close_peer(self, peer: KernelPeer) -> None:
        """Close one of the session's peers (a page replaced or dropped it)."""
        await self._peers.close(peer)

    # -- views ---------------------------------------------------------------------------------
    def widget(self) -> CameraWidget:
        """The camera widget, built on first use (building it connects the session)."""
        if self._widget is None:
            from .widgets.camera import CameraWidget

            self._widget = CameraWidget(self)
        return self._widget

    def panel(self) -> ControlPanel:
        """The control panel, built on first use."""
        if self._panel is None:
            from .widgets.panel import ControlPanel

            self._panel = ControlPanel(self)
        return self._panel

    @overload
    def existing_view(self, name: Literal["widget"]) -> CameraWidget | None: ...
    @overload
    def existing_view(self, name: Literal["panel"]) -> ControlPanel | None: ...
    def existing_view(self, name: Literal["widget", "panel"]) -> CameraWidget | ControlPanel | None:
        """The camera widget or the panel if one was built; builds nothing."""
        return self._widget if name == "widget" else self._panel

    def forget_view(self, view: object) -> None:
        """A widget or panel closed: displaying the session again builds a fresh one."""
        if view is self._widget:
            self._widget = None
        if view is self._panel:
            self._panel = None


def port_of(session: Session) -> SessionPort:
    """The port of `session`: for the modules that drive a Session they did not make (sweeps)."""
    return session._port
