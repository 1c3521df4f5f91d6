"""A Session's connection life: connect (a pipeline on the media loop, the engine bound and given
the state), disconnect (everything stopped, safe twice, from any thread but the loop's), a model
switch, and what the engine and the pipeline report meanwhile."""

from __future__ import annotations

import threading
from typing import cast

from . import _loop
from .engines import FrameEngine
from .engines.events import EngineEvents
from .engines.queue import QueueClock
from .errors import DecartNBError, ErrorCode
from .events import GenerationEnded, GenerationTick
from .media.device import DeviceTrack
from .models import ModelSpec
from .pipeline import Pipeline
from .session_core import ConnectionState, SessionCore
from .session_peers import CameraPeers
from .session_ticks import Ticks
from .timeouts import CLOSE_TIMEOUT_S

__all__ = ["Life"]


class Life:
    """Connects and disconnects one Session (see the module's docstring)."""

    def __init__(self, core: SessionCore, ticks: Ticks, peers: CameraPeers) -> None:
        self._core = core
        self._ticks = ticks
        self._peers = peers
        self._lock = threading.RLock()
        self.queue_clock = QueueClock()  # a service's queue positions -> the expected wait
        core.engine.listen(_EngineListener(self))

    # -- connect -------------------------------------------------------------------------------
    def connect(self) -> None:
        with self._lock:
            if self._core.conn == "disconnected":
                self._connect_locked()

    def _connect_locked(self) -> None:
        core = self._core
        _loop.acquire()
        core.holds_loop = True
        core.events.hold()
        self.queue_clock.reset()
        core.set_conn("connecting")
        try:
            _loop.run(self.start_pipeline(core.spec), timeout=core.guard(core.engine.connect_timeout_s))
        except BaseException as exc:
            self._teardown()
            core.events.release()
            if isinstance(exc, DecartNBError):
                raise exc.with_traceback(None)  # noqa: B904 - from the user's call on: not the loop's frames
            if not isinstance(exc, Exception):
                raise  # the user's Ctrl-C (KeyboardInterrupt) stays one
            raise DecartNBError(
                ErrorCode.ENGINE_ERROR, f"Could not start the session: {exc}", cause=exc
            ) from exc
        _loop.register_closer(self._close_async)
        core.events.release_later()

    async def start_pipeline(self, spec: ModelSpec) -> None:
        core = self._core
        pipeline = Pipeline(
            spec,
            core.engine,
            core.source,
            mirror=core.mirror_now,
            on_frame=self._ticks.output_frame,
            on_end=self._pipeline_ended,
        )
        core.pipeline = pipeline
        core.engine.bind(spec)
        await core.engine.apply(core.state)
        await pipeline.start()
        if isinstance(device := pipeline.slot.upstream, DeviceTrack):
            device.watch(core.report_error, lambda: self._peers.news("stalled"))
        self._ticks.start_publishing()
        if not core.is_camera():
            core.set_conn("connected")
        elif (camera := self._peers.peer_set.camera_track()) is not None:
            pipeline.attach_camera(camera)
            core.set_conn("connected")

    # -- switch --------------------------------------------------------------------------------
    async def switch(self, spec: ModelSpec) -> None:
        """A new pipeline for `spec`; every peer gets its output."""
        core = self._core
        self._ticks.stop()
        core.set_conn("connecting")
        old = core.pipeline
        if old is not None:
            await old.stop()
        core.spec = spec
        await self.start_pipeline(spec)
        assert core.pipeline is not None
        self._peers.peer_set.replace_output(core.pipeline.subscribe)
        core.events.emit("model_change", spec)

    # -- disconnect ----------------------------------------------------------------------------
    def disconnect(self) -> None:
        core = self._core
        if isinstance(core.engine, FrameEngine) and core.engine.in_worker():
            # Called by the model itself: stopping waits for the model to return, so not here.
            core.disconnect_soon("disconnect")
            return
        with self._lock:
            if core.conn != "disconnected" or core.holds_loop:
                self._teardown()

    def _teardown(self) -> None:
        core = self._core
        try:
            if core.holds_loop:
                _loop.run(self._close_async(), timeout=CLOSE_TIMEOUT_S)
        finally:
            _loop.unregister_closer(self._close_async)
            core.set_conn("disconnected")
            core.events.close()
            if core.holds_loop:
                core.holds_loop = False
                _loop.release()

    async def _close_async(self) -> None:
        self._ticks.stop()
        self._ticks.stop_publishing()
        await self._peers.close_all()
        pipeline, self._core.pipeline = self._core.pipeline, None
        if pipeline is not None:
            await pipeline.stop()

    # -- what the engine and the pipeline report (loop thread) -----------------------------------
    def engine_state(self, state: str) -> None:
        core = self._core
        if state != "disconnected":
            core.set_conn(cast(ConnectionState, state))  # the engine's states are the session's
        elif core.conn != "disconnected":  # the engine gave up reconnecting (error already reported)
            core.disconnect_soon("engine-lost")

    def _pipeline_ended(self, error: BaseException | None) -> None:
        core = self._core
        if error is not None:
            core.report_error(
                error
                if isinstance(error, DecartNBError)
                else DecartNBError(
                    ErrorCode.ENGINE_ERROR, f"The media pipeline stopped: {error}", cause=error
                )
            )
        if core.conn != "disconnected":
            core.disconnect_soon("ended")


class _EngineListener(EngineEvents):
    """The Session's ear on its engine: errors always; the service's own states, billed ticks
    and queue only from an engine that owns its connection state (Decart's cloud)."""

    def __init__(self, life: Life) -> None:
        self._life = life
        self._core = life._core
        self._owns = life._core.engine.owns_connection_state

    def error(self, error: DecartNBError) -> None:
        self._core.report_error(error)

    def connection_change(self, state: str) -> None:
        if self._owns:
            self._life.engine_state(state)

    def generation_tick(self, seconds: float) -> None:
        if self._owns:
            self._core.events.emit("generation_tick", GenerationTick(seconds=seconds))

    def queue_position(self, position: int, size: int) -> None:
        if self._owns:
            # A QueuePosition with decart_nb's estimate of the wait (engines/queue.py).
            self._core.events.emit("queue_position", self._life.queue_clock.update(position, size))

    def generation_ended(self, seconds: int, reason: str) -> None:
        if self._owns:
            self._core.events.emit("generation_ended", GenerationEnded(seconds=seconds, reason=reason))
