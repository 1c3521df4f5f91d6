"""The media path of one session, on the loop thread: source -> input slot -> engine -> broadcast."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .engines.base import Engine
from .errors import DecartNBError, ErrorCode
from .media.frames import recv_video
from .media.relay import Broadcast, BroadcastTrack, InputSlot, PushTrack
from .media.sources import make_source
from .media.stats import StreamStats
from .models import ModelSpec

__all__ = ["Pipeline"]

logger = logging.getLogger("decart_nb")


class Pipeline:
    """Built by connect(), torn down by disconnect() or a model switch. Loop thread only."""

    def __init__(
        self,
        spec: ModelSpec,
        engine: Engine,
        source: object,
        *,
        mirror: Callable[[], bool],
        on_frame: Callable[[], None],
        on_end: Callable[[BaseException | None], None],
    ) -> None:
        self.spec = spec
        self.engine = engine
        self.stats = StreamStats()
        self.slot = InputSlot(self.stats, mirror)
        self.broadcast = Broadcast(self.stats)
        self._source_arg = source
        self._on_frame = on_frame
        self._on_end = on_end
        self._source: MediaStreamTrack | None = None
        self._pump: asyncio.Task[None] | None = None
        self._output: PushTrack | None = None  # an engine's output that hands frames straight in
        self._ended = False

    async def start(self) -> None:
        self._source = await make_source(self._source_arg, self.spec)
        output = await self.engine.start(self.slot)
        if isinstance(output, PushTrack) and output.readyState == "live":
            # published in the step that hands the frame over (the model thread's callback on
            # the loop), with no task to wake in between
            self._output = output
            output.connect(self._publish, self._output_ended)
        else:
            self._pump = asyncio.get_running_loop().create_task(self._run(output))
        if self._source is not None:
            self.slot.on_upstream_end = lambda _track: self.slot.stop()
            self.slot.attach(self._source)

    def attach_camera(self, track: MediaStreamTrack) -> None:
        self.slot.attach(track)

    def subscribe(self) -> BroadcastTrack:
        return self.broadcast.subscribe()

    def _publish(self, frame: av.VideoFrame) -> None:
        if self._ended:
            return
        try:
            self.broadcast.publish(frame)
            self._on_frame()
        except Exception as exc:
            logger.exception("decart_nb: the media pipeline failed")
            self._end(exc)

    def _output_ended(self) -> None:
        self._end(_source_error(self.slot.error))

    def _end(self, error: BaseException | None) -> None:
        """The output ended (or publishing failed): said once; a stop() says nothing."""
        if self._ended:
            return
        self._ended = True
        if self._output is not None:
            self._output.disconnect()
        self._on_end(error)

    async def _run(self, output: MediaStreamTrack) -> None:
        error: BaseException | None = None
        try:
            while True:
                self.broadcast.publish(await recv_video(output))
                self._on_frame()
        except MediaStreamError:  # the source ended, or failed
            error = _source_error(self.slot.error)
        except asyncio.CancelledError:
            return
        except Exception as exc:
            logger.exception("decart_nb: the media pipeline failed")
            error = exc
        self._on_end(error)

    async def stop(self) -> None:
        self._ended = True  # the engine's output stops below: not an end to report
        if self._output is not None:
            self._output.disconnect()
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = None
        self.slot.stop()
        if self._source is not None:
            self._source.stop()
        self.broadcast.close()
        await self.engine.stop()


def _source_error(error: Exception | None) -> DecartNBError | None:
    if error is None or isinstance(error, DecartNBError):
        return error
    return DecartNBError(
        ErrorCode.SOURCE_ERROR, f"The source failed: {type(error).__name__}: {error}", cause=error
    )
