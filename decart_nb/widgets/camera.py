"""The video widget: the page's camera goes to the kernel over WebRTC, the output comes back.

The page (js/src) owns the camera and the RTCPeerConnection; the kernel answers its
offers through the widget's SessionPort (`answer_async`, on the media loop). State the page
renders travels as synced traits, each with one writer (this class); events travel as custom
messages, whose schema is in
messages.py (one handler per page message type below, in `_HANDLERS`).

With `transport="codec"` (or "auto" when WebRTC does not connect within a few seconds) frames
travel without WebRTC: VP8 chunks where the page's WebCodecs can (codec_link.py), JPEG frames
otherwise or with `transport="jpeg"` (jpeg_link.py); both are frame_link.py's FrameLinks. The
pipe that carries a link's messages is the comm or the page socket.

The kernel reads comm messages only between cells. So the widget has a page socket for as long as
it lives (media_socket.py: a websocket relayed by decart_nb_server, read on the media loop): the
page sends its messages there (its offer reaches the kernel while a cell runs), and the codec
link's chunks, acks and key-frame requests, without Jupyter's per-message overhead. Where
the server has no relay everything stays on the comm, and `kernel_busy` tells the page that a
slow answer is a running cell, not a broken network.

Page messages are handled through `_HANDLERS`, from the comm (the main thread, or a kernel
subshell thread) or from the socket (the media loop): handlers only decode and hand off to the
media loop, never block.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import anywidget
import traitlets as t

from .. import _loop
from ..errors import DecartNBError, ErrorCode, camera_error_code
from ..figures import figures as compute_figures
from ..figures import is_live
from ..media.stats import PAGE_STATS
from ..models import ModelSpec
from ..session_core import LinkFigures
from ..timeouts import LOOP_CALL_TIMEOUT_S, PAGE_SOCKET_OFFER_AFTER_S
from . import messages
from .codec_link import CodecLink
from .frame_link import FrameLink
from .jpeg_link import JpegLink
from .media_socket import RELAY_ENV, MediaSocket
from .messages import BrowserIceServer, JsonValue, PageMessage, Seq

if TYPE_CHECKING:
    from aiortc import RTCIceServer
    from IPython.core.interactiveshell import InteractiveShell

    from ..rtc.peer import KernelPeer
    from ..session import Session
    from ..session_port import SessionPort

__all__ = ["CAMERA_ADVICE", "TRANSPORTS", "CameraWidget"]

logger = logging.getLogger("decart_nb")
STATIC = Path(__file__).parent / "static"
TRANSPORTS = ("auto", "webrtc", "codec", "jpeg")
# Older spellings of a transport the user may still pass, for one release (with a FutureWarning).
DEPRECATED_TRANSPORTS = {"comm": "codec"}
MAX_REASON = 200  # characters of the page's `transport` reason kept for session.stats
Buffers: TypeAlias = Sequence[bytes | memoryview] | None  # a comm message's binary buffers
# What the page says it uses (`transport` message) -> the kernel's side of it.
_LINKS: dict[str, type[FrameLink]] = {"jpeg": JpegLink, "codec": CodecLink}
# An older page's name for its JPEG link, read as the new one.
_PAGE_TRANSPORTS = {"comm": "jpeg"}

# What the user can do about each camera failure (shown in the page and carried by the error).
CAMERA_ADVICE = {
    ErrorCode.CAMERA_PERMISSION_DENIED: (
        "The browser blocked the camera. Allow camera access for this page (the camera icon in the "
        "address bar, or the site settings), then press Try again."
    ),
    ErrorCode.CAMERA_NOT_FOUND: (
        "No camera was found. Plug one in (or pick another in the panel), then press Try again; "
        'without a camera, use Session(source="pattern") or a video file.'
    ),
    ErrorCode.CAMERA_BUSY: (
        "The camera is in use by another application or tab, or failed to start. Close the other "
        "user (video calls, other notebooks), then press Try again."
    ),
    ErrorCode.CAMERA_OVERCONSTRAINED: (
        "The camera cannot deliver the model's size or frame rate, even as a preference. Pick "
        "another camera, then press Try again."
    ),
    ErrorCode.CAMERA_ERROR: "The camera could not be started. Press Try again, or reload the page.",
}

CAMERA_ENDED_ADVICE = (
    "The camera stopped while in use: it was unplugged, or the browser's camera permission was "
    "revoked. Plug it in (or allow the camera again), then press Try again."
)


def _figure_lists(stats: Mapping[str, object], live: bool | None = None) -> list[list[str]]:
    """The figures as the `figures` trait carries them: [name, value, title] each."""
    return [f.as_list() for f in compute_figures(stats, live)]


class CameraWidget(anywidget.AnyWidget):
    """Camera in, transformed video out, live in the notebook page. Built by `session.widget`.

    A camera session sends the page's camera; any other source shows its output only (receive
    only, no camera prompt). Closing the widget stops the page's camera and closes the peer; a
    camera session is disconnected with it (the widget is its camera).

    Frames travel over WebRTC, or, where it cannot connect (UDP blocked, Binder), over the comm
    (or the page socket): as VP8 video ("codec") where the browser's WebCodecs can, else as JPEG
    ("jpeg"; slower, but it always works). `transport` chooses ("auto" tries WebRTC first; "comm"
    is the deprecated spelling of "codec"); `active_transport` says what the page uses now.
    """

    _esm = STATIC / "camera.js"
    _css = STATIC / "camera.css"

    # Written by the kernel only; the page reads them.
    mode = t.Unicode("camera", help="'camera': send the camera; 'receive': show the output only").tag(
        sync=True
    )
    width = t.Int(1280).tag(sync=True)
    height = t.Int(720).tag(sync=True)
    fps = t.Int(30).tag(sync=True)
    facing_mode = t.Unicode("user").tag(sync=True)
    device_id = t.Unicode("", help="the camera to use, a deviceId from `devices` ('' = default)").tag(
        sync=True
    )
    mirror = t.Union([t.Bool(), t.Unicode()], default_value=False).tag(sync=True)
    codec = t.Unicode("vp8").tag(sync=True)
    # How many ICE servers the session has: the page waits for them (an `ice_servers` message)
    # before it makes a peer. The servers themselves never go in the state: a TURN credential in
    # it would be saved into the notebook (JupyterLab's "save widget state", embedding).
    ice_server_count = t.Int(0).tag(sync=True)
    keep_running_hidden = t.Bool(False, help="keep the camera running while the tab is hidden").tag(sync=True)
    playout_target_ms = t.Float(
        0.0,
        min=0.0,
        max=4000.0,
        help="the page's jitter buffer target for the output: 0 shows each frame as soon as it is "
        "decoded (lowest latency; frames that land within one display refresh are skipped, 2-4 a "
        "second in Chromium), 40 shows all 30 fps at the cost of some latency under load",
    ).tag(sync=True)
    transport = t.Enum(
        (*TRANSPORTS, *DEPRECATED_TRANSPORTS),
        "auto",
        help="'webrtc', 'codec' (video without WebRTC, over the Jupyter comm or the page socket: VP8 "
        "where the browser's WebCodecs can, JPEG otherwise; always works), 'jpeg' (JPEG frames), or "
        "'auto': WebRTC, falling back to 'codec' when it does not connect. 'comm' is the deprecated "
        "spelling of 'codec' (one release, with a FutureWarning)",
    ).tag(sync=True)
    state = t.Unicode("disconnected").tag(sync=True)
    # True while an IPython cell runs: the kernel reads comm messages only between cells, so a page
    # waiting for an answer over the comm waits for the cell rather than giving up on WebRTC.
    kernel_busy = t.Bool(False).tag(sync=True)
    # The figures the status line shows, [name, value, title] each: decart_nb/figures.py's, the
    # panel's too, so the names cannot drift; dashes while the session is not live.
    figures = t.List(t.List(t.Unicode()), default_value=_figure_lists({}, live=False)).tag(sync=True)
    error = t.Dict().tag(sync=True)
    # anywidget hands initialize and render different proxies of one model: this ties them.
    _key = t.Unicode().tag(sync=True)
    # Kernel side only: the cameras the page found ({deviceId, label}) and what it uses now.
    devices = t.List(t.Dict())
    camera = t.Dict()
    active_transport = t.Unicode(
        "",
        read_only=True,
        help="the transport the page uses now: 'webrtc', 'codec' (VP8 without WebRTC), 'jpeg' (JPEG "
        "frames without WebRTC) or '' (none yet)",
    )

    def __init__(self, port: SessionPort, **kwargs: object) -> None:
        session = port.session
        spec = session.model
        shell = _ipython()
        super().__init__(
            mode="camera" if isinstance(session.source, str) and session.source == "camera" else "receive",
            width=spec.width,
            height=spec.height,
            fps=spec.fps,
            facing_mode=session.facing_mode,
            mirror=session.mirror,
            codec=session.codec,
            ice_server_count=len(port.ice_servers),  # in the state the page opens with
            state=session.state,
            _key=uuid.uuid4().hex,
            # Made on the main thread of a kernel: made by a running cell.
            kernel_busy=shell is not None and threading.current_thread() is threading.main_thread(),
            **kwargs,
        )
        self._port = port
        self._session = session
        self._closed = False
        self._peers: set[KernelPeer] = set()  # this page's peers (a receive-only page may leave old ones)
        self._comm: FrameLink | None = None  # loop thread only
        self._transport_reason = ""  # why the page does not use WebRTC ("" when it does)
        self._shell: InteractiveShell | None = None  # the shell whose cell events set kernel_busy
        # The page socket: one listener per connection of the session (it lives on the session's
        # media loop, which a disconnected session lets go of), for as long as the widget lives.
        self._media: MediaSocket | None = None
        self._offering: asyncio.Task[None] | None = None  # the offer's resends (loop thread)
        self._offered_at = float("-inf")  # time.monotonic() of the last offer
        self._watch_cells(shell)
        self.on_msg(self._on_page_message)
        port.listen(self._on_event)  # a connect below opens the page socket
        session.connect()
        if self._media is None and session.state != "disconnected":  # it was connected already
            self._open_page_socket()

    @property
    def session(self) -> Session:
        return self._session

    # -- page -> kernel (any thread; never block) -----------------------------------------------
    def _on_page_message(self, _widget: object, content: object, buffers: Buffers) -> None:
        """A page message over the comm (main or subshell thread)."""
        if not isinstance(content, Mapping):
            return
        self._page_used_the_comm()
        kind = content.get("type")
        if kind in ("frame", "chunk"):  # the hot path of the frame links
            self._comm_frame(content, buffers)
            return
        self._dispatch(content)

    def _dispatch(self, content: PageMessage) -> None:
        """A page message (not a frame) to its handler: from the comm or the page socket."""
        kind = content.get("type")
        handler = _HANDLERS.get(str(kind))
        if handler is None:
            logger.warning("decart_nb: the camera page sent an unknown message %r", kind)
            return
        try:
            handler(self, content)
        except DecartNBError as exc:
            self._port.report_error(exc)

    def _offer(self, content: PageMessage) -> None:
        sdp, attempt = content.get("sdp"), content.get("attempt", 0)
        if self._session.state == "disconnected" or not isinstance(sdp, str):
            error = DecartNBError(
                ErrorCode.NOT_CONNECTED,
                "The session is disconnected: run session.connect() to start it again.",
            )
            self.send(messages.answer_error(attempt, error.to_dict()))
            return
        _loop.submit(self._answer(sdp, attempt))

    async def _answer(self, sdp: str, attempt: JsonValue) -> None:
        try:
            peer = await self._port.answer_async(sdp)
        except Exception as exc:  # noqa: BLE001 - reported as an error event and to the page
            error = _as_error(exc, ErrorCode.WEBRTC_SIGNALING_ERROR, "Could not answer the page's offer")
            self._port.report_error(error)
            self.send(messages.answer_error(attempt, error.to_dict()))
            return
        if self._closed:
            await self._port.close_peer(peer)
            return
        # The page keeps one connection: close the ones it replaced (a camera session does so itself).
        old, self._peers = self._peers, {peer}
        await self._close_peers(old - self._peers)
        self.send(messages.answer(attempt, peer.answer_sdp))

    async def _close_peers(self, peers: set[KernelPeer]) -> None:
        for peer in peers:
            await self._port.close_peer(peer)

    def _camera_info(self, content: PageMessage) -> None:
        info = {
            k: content.get(k) for k in ("facingMode", "label", "deviceId", "width", "height", "frameRate")
        }
        self.camera = info
        self._port.set_camera_facing(info["facingMode"])
        if self.error.get("code", "").startswith("CAMERA_"):
            self.error = {}

    def _devices(self, content: PageMessage) -> None:
        found = content.get("devices")
        if isinstance(found, list):
            self.devices = [
                {"deviceId": str(d.get("deviceId", "")), "label": str(d.get("label", ""))}
                for d in found
                if isinstance(d, Mapping)
            ]

    def _camera_error(self, content: PageMessage) -> None:
        name = str(content.get("name") or "Error")
        code = camera_error_code(name)
        self._port.report_error(
            DecartNBError(
                code,
                CAMERA_ADVICE[code],
                data={"name": name, "browser_message": str(content.get("message") or "")},
            )
        )

    def _camera_ended(self, content: PageMessage) -> None:
        """The camera stopped mid-stream; the page shows the error with Try again."""
        label = str(content.get("label") or "")
        self._port.report_error(
            DecartNBError(ErrorCode.CAMERA_ERROR, CAMERA_ENDED_ADVICE, data={"name": "ended", "label": label})
        )

    def _reconnecting(self, content: PageMessage) -> None:
        if self.mode == "camera" and self._session.state != "disconnected":
            _loop.call_soon(self._port.peer_lost)

    def _gave_up(self, content: PageMessage) -> None:
        # The session's own give-up timer reports the error and disconnects.
        logger.warning("decart_nb: the page stopped reconnecting after %s attempts", content.get("attempts"))

    def _stopped(self, content: PageMessage) -> None:
        """The page stopped its camera and closed its peer (its last view went away)."""
        logger.info("decart_nb: the page stopped the camera (%s)", content.get("reason"))
        if self._session.state != "disconnected":
            _loop.submit(self._drop_peers())
            _loop.call_soon(self._stop_comm_output)
            if self.mode == "camera":
                _loop.call_soon(self._port.peer_lost)

    async def _drop_peers(self) -> None:
        peers, self._peers = self._peers, set()
        await self._close_peers(peers)

    def _want_ice_servers(self, content: PageMessage) -> None:
        self._send_ice_servers()

    def _send_ice_servers(self) -> None:
        """Any thread: the session's ICE servers (their TURN credentials) in a comm message, the
        one way they reach the page."""
        servers = self._port.ice_servers
        if servers and not self._closed:
            self.send(messages.ice_servers([_browser_ice_server(s) for s in servers]))

    def _page_stats(self, content: PageMessage) -> None:
        """What the browser sends, receives and presents, into session.stats as `page_*`."""
        self._port.add_page_stats({key: _finite(content.get(key)) for key in PAGE_STATS})

    # -- the frame links (see frame_link.py, jpeg_link.py, codec_link.py) ------------------------------
    def _transport(self, content: PageMessage) -> None:
        said = content.get("transport")
        kind = _PAGE_TRANSPORTS.get(said, said) if isinstance(said, str) else None
        if kind is None or (kind != "webrtc" and kind not in _LINKS):
            return
        reason = content.get("reason")
        self._transport_reason = reason[:MAX_REASON] if isinstance(reason, str) else ""
        self.set_trait("active_transport", kind)
        if self._session.state == "disconnected":
            return
        if kind == "webrtc":
            _loop.call_soon(self._use_webrtc)
        else:
            _loop.call_soon(self._use_comm, kind)

    def _use_comm(self, kind: str) -> None:
        """On the loop: the page gave up on WebRTC (or never tried): frames travel over the comm."""
        if self._closed:
            return
        if self._peers:  # a failed WebRTC attempt must not report the session as lost later
            _loop.get_loop().create_task(self._drop_peers())
        if self._comm is not None and self._comm.name != kind:
            self._close_comm()  # the page moved between JPEG and VP8
        if self._comm is None:
            self._comm = _LINKS[kind](self._port, self._send_frame)
        self._port.show_link_figures(self._link_figures)
        self._comm.start_output()

    def _use_webrtc(self) -> None:
        self._stop_comm_output()
        self._port.show_link_figures(self._webrtc_figures)

    def _link_figures(self) -> LinkFigures:
        """Loop thread: the frame link's figures for session.stats, the codec link's pipe, and
        why the page does not use WebRTC."""
        comm = self._comm
        if comm is None:
            return {}
        found = comm.figures() | {"transport_reason": self._transport_reason} | self._camera_size()
        if isinstance(comm, CodecLink):
            pipe = "socket" if self._media is not None and self._media.live else "comm"
            found["pipe"] = pipe
            found["transport_pipe"] = pipe  # the deprecated name of `pipe`, for one release
            if comm.rate is not None and comm.rate.latency > 0:  # the output's acks: the round trip
                found["transport_rtt_ms"] = round(comm.rate.latency * 1000.0, 1)
        return found

    def _webrtc_figures(self) -> LinkFigures:
        return {"transport": "webrtc", "transport_reason": ""} | self._camera_size()

    def _camera_size(self) -> LinkFigures:
        """The page camera's size (its `camera` message), for session.stats; {} without one."""
        camera = self.camera
        if self.mode != "camera" or not camera:
            return {}
        return {"camera_width": camera.get("width"), "camera_height": camera.get("height")}

    # -- the page socket (media_socket.py; loop thread unless said otherwise) ----------------------
    def _open_page_socket(self) -> None:
        """Any thread (the session just connected): a new listener on the session's loop, offered
        to the page before this returns (off the loop), so before the `restart` that follows."""
        if not os.environ.get(RELAY_ENV):  # no relay on this kernel's host: the comm carries all
            self._send_ice_servers()  # what an offer brings first, unasked
            return
        media = MediaSocket(
            self._media_message, self._media_live, self._media_lost, types=messages.SOCKET_TYPES
        )
        self._media = media
        if _loop.in_loop_thread():
            _loop.get_loop().create_task(self._listen(media))
            return
        try:
            _loop.run(self._listen(media), timeout=LOOP_CALL_TIMEOUT_S)
        except DecartNBError as exc:  # the loop is stuck or gone: the comm carries everything
            logger.warning("decart_nb: no page socket (%s); the comm carries everything", exc)

    async def _listen(self, media: MediaSocket) -> None:
        """Listen, then tell the page where (at once, and again while no connection is live)."""
        try:
            await media.start()
        except OSError as exc:  # no loopback listener: everything stays on the comm
            logger.warning("decart_nb: no page socket (%s); the comm carries everything", exc)
            return
        if media is self._media and not self._closed:
            self._offer_now(media)
            self._start_offering(media, first=False)

    def _start_offering(self, media: MediaSocket, first: bool = True) -> None:
        self._stop_offering()
        if not self._closed and media is self._media and media.port:
            self._offering = asyncio.get_running_loop().create_task(self._offer_page_socket(media, first))

    def _stop_offering(self) -> None:
        if self._offering is not None:
            self._offering.cancel()
            self._offering = None

    async def _offer_page_socket(self, media: MediaSocket, first: bool) -> None:
        """The offer now (if `first`) and PAGE_SOCKET_OFFER_AFTER_S after it, until a connection
        is live. anywidget (0.11) holds a model's custom messages until its `initialize` has run,
        but one that reaches the page before the model exists there is lost."""
        start = time.monotonic()
        for after in (0.0, *PAGE_SOCKET_OFFER_AFTER_S) if first else PAGE_SOCKET_OFFER_AFTER_S:
            await asyncio.sleep(max(0.0, start + after - time.monotonic()))
            if self._closed or media is not self._media or media.live:
                return
            self._offer_now(media)

    def _offer_now(self, media: MediaSocket) -> None:
        """The socket's offer, after the ICE servers: a page that missed them gets them with it."""
        self._offered_at = time.monotonic()
        self._send_ice_servers()
        self.send(messages.media_socket(media.port, media.token))

    def _page_used_the_comm(self) -> None:
        """Any thread: a page message came over the comm, so the page may not know the socket (a
        page reloaded after the resends): offer it again, at most once per the resends' last wait."""
        media = self._media
        if media is None or media.live or time.monotonic() - self._offered_at < PAGE_SOCKET_OFFER_AFTER_S[-1]:
            return
        self._offered_at = time.monotonic()  # one hop to the loop per wait, not one per frame
        _loop.call_soon(self._offer_again, media)

    def _offer_again(self, media: MediaSocket) -> None:
        if not self._closed and media is self._media and media.port and not media.live:
            self._offer_now(media)

    def _media_message(self, content: dict[str, JsonValue], data: bytes) -> None:
        """A message from the page socket: media (chunk, chunk_ack, keyframe) as from the comm's
        hot path, any other page message through `_HANDLERS`."""
        if self._closed:
            return
        kind = content["type"]
        if kind not in ("chunk", "chunk_ack", "keyframe"):
            self._dispatch(content)
        elif self._session.state == "disconnected":
            return
        elif kind == "chunk":
            if self.mode == "camera":
                self._receive_frame(content, data, time.perf_counter())
        elif kind == "chunk_ack":
            self._output_acked(content["seq"])
        else:
            self._keyframe_requested()

    def _media_live(self) -> None:
        logger.debug("decart_nb: the page socket is live")
        self._stop_offering()

    def _media_lost(self) -> None:
        """The live page socket closed or was replaced: the output goes on (over the comm, or the
        newer socket) at a key frame, without waiting for chunks lost with it; a page reloaded
        meanwhile gets the offer again."""
        logger.info("decart_nb: the page socket closed; the comm carries the page's messages")
        if self._comm is not None:
            self._comm.pipe_lost()
        if self._media is not None:
            self._start_offering(self._media)

    def _close_page_socket(self) -> None:
        """Loop thread: stop listening (the session disconnects, or the widget closes)."""
        media, self._media = self._media, None
        self._close_media(media)

    def _close_media(self, media: MediaSocket | None) -> None:
        """Loop thread: close `media`, and its resends (a newer socket's offers are its own)."""
        if media is not None and self._media is None:
            self._stop_offering()
        if media is not None:
            media.close()

    def _close_page_socket_soon(self) -> None:
        """Any thread, the loop still running (the session disconnects): this socket, not one a
        quick connect() opens meanwhile, is closed on the loop."""
        media, self._media = self._media, None
        if _loop.in_loop_thread():
            self._close_media(media)
            return
        try:
            _loop.call_soon(self._close_media, media)
        except (DecartNBError, RuntimeError) as exc:  # no loop (any more): the listener went with it
            logger.debug("decart_nb: the page socket's loop is gone (%s)", exc)

    # -- kernel_busy: IPython's cells ------------------------------------------------------------
    def _watch_cells(self, shell: InteractiveShell | None) -> None:
        """kernel_busy follows the cells of the IPython shell the widget was made in."""
        if shell is None:
            return
        shell.events.register("pre_run_cell", self._cell_started)
        shell.events.register("post_run_cell", self._cell_ended)
        self._shell = shell

    def _unwatch_cells(self) -> None:
        shell, self._shell = self._shell, None
        if shell is None:
            return
        for event, callback in (("pre_run_cell", self._cell_started), ("post_run_cell", self._cell_ended)):
            try:
                shell.events.unregister(event, callback)
            except ValueError:  # not registered (anymore): nothing to undo
                logger.debug("decart_nb: %s was not registered", event)

    def _cell_started(self, _info: object = None) -> None:
        self.kernel_busy = True

    def _cell_ended(self, _result: object = None) -> None:
        self.kernel_busy = False

    def _send_frame(self, content: messages.KernelMessage, buffers: list[bytes]) -> None:
        if self._closed:
            return
        media = self._media
        if media is None or not media.send(content, buffers):  # the page socket while it is live
            self.send(content, buffers or None)

    def _comm_frame(self, content: PageMessage, buffers: Buffers) -> None:
        t_in = time.perf_counter()
        if self.mode != "camera" or self._session.state == "disconnected" or not buffers:
            return
        _loop.call_soon(self._receive_frame, dict(content), bytes(buffers[0]), t_in)

    def _receive_frame(self, content: PageMessage, data: bytes, t_in: float) -> None:
        # A JPEG frame to the VP8 transport, or the reverse (a page between transports): dropped.
        expected = "chunk" if isinstance(self._comm, CodecLink) else "frame"
        if self._comm is not None and not self._closed and content.get("type") == expected:
            self._comm.receive(content.get("seq"), data, t_in, content)

    def _frame_ack(self, content: PageMessage) -> None:
        if self._session.state != "disconnected":
            _loop.call_soon(self._output_acked, content.get("seq"))

    def _output_acked(self, seq: Seq) -> None:
        if self._comm is not None:
            self._comm.acked(seq)

    def _keyframe(self, content: PageMessage) -> None:
        if self._session.state != "disconnected":
            _loop.call_soon(self._keyframe_requested)

    def _keyframe_requested(self) -> None:
        if isinstance(self._comm, CodecLink):
            self._comm.keyframe_requested()

    def _stop_comm_output(self) -> None:
        if self._comm is not None:
            self._comm.stop_output()

    def _close_comm(self) -> None:
        comm, self._comm = self._comm, None
        self._port.show_link_figures(None)
        if comm is not None:
            comm.close()

    async def _close_comm_async(self) -> None:
        self._close_comm()
        self._close_page_socket()

    # -- session -> page (emitting thread: the loop or the caller's) --------------------------------
    def _on_event(self, event: str, payload: object) -> None:
        if self._closed:
            return
        if event == "connection_change":
            previous, self.state = self.state, str(payload)
            if not is_live(payload):
                self.figures = _figure_lists({}, live=False)
            elif payload == "generating":  # generating again: an error shown before is over
                self.error = {}
            if payload == "disconnected":
                # The socket first: no resend of its offer can follow the stop (the page forgets
                # the offer at the stop, and the port is free for anyone once the listener closes).
                self._close_page_socket_soon()
                self.send(messages.stop())
                if self._comm is not None:
                    _loop.call_soon(self._close_comm)
            elif previous == "disconnected" and payload == "connecting":
                self._open_page_socket()  # its offer goes first: the page's new offer may take it
                self._send_ice_servers()  # before the restart: its new peer needs them
                self.send(messages.restart())
        elif event == "error" and isinstance(payload, DecartNBError):
            self.error = payload.to_dict()
        elif event == "generation_change":  # a state was applied: an error shown before is over
            self.error = {}
        elif event == "model_change" and isinstance(payload, ModelSpec):
            spec = payload
            self.set_trait("width", spec.width)
            self.set_trait("height", spec.height)
            self.set_trait("fps", spec.fps)
            self.send(messages.restart())  # the page re-requests the camera and renegotiates
        elif event == "stats" and isinstance(payload, Mapping):
            # Once a second from the loop: the figures, and session.mirror (a plain attribute).
            self.figures = _figure_lists(payload)
            if self.mirror != self._session.mirror:
                self.mirror = self._session.mirror

    @t.validate("transport")
    def _check_transport(self, proposal: t.Bunch) -> str:
        """The deprecated spelling ("comm") becomes the new one, with a FutureWarning: shown in a
        notebook whatever module it is attributed to (a DeprecationWarning is shown only for code
        in __main__, and this one is raised inside traitlets' setattr)."""
        value = str(proposal["value"])
        new = DEPRECATED_TRANSPORTS.get(value)
        if new is None:
            return value
        warnings.warn(
            f'transport="{value}" is deprecated and will be removed in the next release: use '
            f'transport="{new}" (the same: VP8 video without WebRTC, JPEG where the browser has no '
            "WebCodecs VP8)",
            FutureWarning,
            stacklevel=_caller_level(),
        )
        return new

    @t.observe("facing_mode")
    def _facing_changed(self, change: Mapping[str, object]) -> None:
        # A facing mode names a kind of camera: it replaces a camera chosen by id.
        self.device_id = ""

    # -- the user's side --------------------------------------------------------------------------
    def choose_camera(self, device_id: str) -> None:
        """Switch to another camera (a deviceId from `devices`) without rebuilding the session."""
        known = {d["deviceId"] for d in self.devices}
        if device_id and known and device_id not in known:
            raise DecartNBError(ErrorCode.INVALID_INPUT, f"Unknown camera {device_id!r}; see widget.devices")
        self.device_id = device_id

    def close(self) -> None:
        """Stop the page's camera, close this widget's peers; a camera session disconnects."""
        if self._closed:
            super().close()
            return
        self._closed = True
        self._port.unlisten(self._on_event)
        self._unwatch_cells()
        try:
            if self._session.state != "disconnected" and not _loop.in_loop_thread():
                _loop.run(self._close_comm_async(), timeout=LOOP_CALL_TIMEOUT_S)
                if self.mode == "camera":
                    self._session.disconnect()
                else:
                    _loop.run(self._drop_peers(), timeout=LOOP_CALL_TIMEOUT_S)
        finally:
            self._port.forget_view(self)
            super().close()


_HANDLERS = {
    "offer": CameraWidget._offer,
    "camera": CameraWidget._camera_info,
    "devices": CameraWidget._devices,
    "camera_error": CameraWidget._camera_error,
    "camera_ended": CameraWidget._camera_ended,
    "reconnecting": CameraWidget._reconnecting,
    "gave_up": CameraWidget._gave_up,
    "stopped": CameraWidget._stopped,
    "transport": CameraWidget._transport,
    "frame_ack": CameraWidget._frame_ack,
    "chunk_ack": CameraWidget._frame_ack,
    "keyframe": CameraWidget._keyframe,
    "page_stats": CameraWidget._page_stats,
    "want_ice_servers": CameraWidget._want_ice_servers,
}


def _caller_level() -> int:
    """The stacklevel of the first frame outside decart_nb and traitlets: the user's line."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").split(".")[0] in _INSIDE:
        frame, level = frame.f_back, level + 1
    return level


_INSIDE = frozenset({"decart_nb", "traitlets", "ipywidgets", "anywidget"})


def _ipython() -> InteractiveShell | None:
    """The running IPython shell, or None (plain Python, tests)."""
    try:
        from IPython import get_ipython
    except ImportError:  # no IPython: no cells to follow
        return None
    shell: InteractiveShell | None = get_ipython()
    return shell


def _browser_ice_server(server: RTCIceServer) -> BrowserIceServer:
    """An aiortc RTCIceServer as the browser's RTCIceServer dict (TURN needs its credential)."""
    entry: BrowserIceServer = {"urls": server.urls}
    if server.username:
        entry["username"] = server.username
    if server.credential:
        entry["credential"] = server.credential
    return entry


def _as_error(exc: BaseException, code: str, what: str) -> DecartNBError:
    if isinstance(exc, DecartNBError):
        return exc
    return DecartNBError(code, f"{what}: {exc}", cause=exc)


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return round(float(value), 1)
