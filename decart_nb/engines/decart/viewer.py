"""A receive-only view of a running Decart session (Decart's subscribe), for a second notebook.

The host shares `session.engine.subscribe_token` (it names the session's room, no key); the
viewer uses its own key to ask Decart for watch credentials and receives the transformed video.
It sends nothing and cannot change the prompt. `decart_nb.watch(token)` makes such a session.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import av
from aiortc.mediastreams import MediaStreamTrack
from PIL import Image

from ...errors import DecartNBError, ErrorCode
from ...media.frames import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, FrameMeta
from ...media.relay import MailboxTrack
from ...secret_key import SecretKey, hidden
from ...state import GenerationState
from ..base import Engine
from .engine import read_remote
from .errors import translate
from .sdk import DecartSDK, RealtimeStream, guard_sdk_logs, load_sdk, resolve_base_url, resolve_key

if TYPE_CHECKING:
    from ...session import Session

__all__ = ["DecartViewer", "watch"]


class DecartViewer(Engine):
    """Decart's subscribe: the output of someone's running session, receive-only."""

    name = "decart-viewer"
    owns_connection_state = True

    def __init__(
        self,
        subscribe_token: str,
        api_key: str | SecretKey | None = None,
        *,
        sdk: DecartSDK | None = None,
        base_url: str | None = None,
    ) -> None:
        self._key = resolve_key(api_key)
        del api_key  # this frame is in the traceback of the checks below: no raw key in it
        if not isinstance(subscribe_token, str) or not subscribe_token.strip():
            raise DecartNBError(ErrorCode.INVALID_INPUT, "subscribe_token must be the host's subscribe token")
        self._token = subscribe_token.strip()
        self._sdk = sdk if sdk is not None else load_sdk()
        subscribe, subscribe_options = self._sdk.subscribe, self._sdk.subscribe_options
        if subscribe is None or subscribe_options is None:
            raise DecartNBError(ErrorCode.SDK_NOT_INSTALLED, "This Decart SDK cannot subscribe to a session")
        self._subscribe, self._subscribe_options = subscribe, subscribe_options
        self.base_url = resolve_base_url(base_url, self._sdk.base_url)
        guard_sdk_logs()
        self.state = "disconnected"
        self._version = 0
        self._client: RealtimeStream | None = None
        self._output: MailboxTrack | None = None
        self._reader: asyncio.Task[None] | None = None
        self._t0 = time.perf_counter()

    def __repr__(self) -> str:
        # getattr: a traceback's variables show this object half-built when __init__ fails
        return f"<DecartViewer state={getattr(self, 'state', None)}>"

    async def start(self, source: MediaStreamTrack) -> MediaStreamTrack:
        # The input is never read: a viewer sends nothing.
        self._output = MailboxTrack()
        error: DecartNBError | None = None
        try:
            options = self._subscribe_options(token=self._token, on_remote_stream=self._on_remote)
            self._client = client = await self._subscribe(self.base_url, self._key.reveal(), options)
        except ValueError as exc:  # the SDK's "Invalid subscribe token"
            error = DecartNBError(ErrorCode.INVALID_INPUT, f"Could not watch: {exc}")
        except Exception as exc:  # noqa: BLE001 - translated below, outside the except (no key in __context__)
            error = translate(exc, "watch the Decart session", self._sdk, self._key)
        if error is not None:
            await self.stop()
            raise error
        client.on("connection_change", self._on_state)
        client.on("error", lambda exc: self.events.error(translate(exc, "watch", self._sdk, self._key)))
        self.state = "connected"
        return self._output

    async def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        client, self._client = self._client, None
        self.state = "disconnected"
        if client is not None:
            try:
                await client.disconnect()
            except Exception as exc:  # noqa: BLE001 - teardown goes on; the failure is reported
                self.events.error(translate(exc, "stop watching", self._sdk, self._key))
        output, self._output = self._output, None
        if output is not None:
            output.stop()

    async def apply(self, state: GenerationState) -> None:
        if self._client is None and state.is_passthrough:
            self._version = state.version  # the session's initial (empty) state: nothing to send
            return
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            "A viewer is receive-only: the prompt and image belong to the session being watched",
        )

    def _on_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.events.connection_change(state)

    def _on_remote(self, remote: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
        self._reader = asyncio.get_running_loop().create_task(self._read(remote), name="decart_nb-watch")

    async def _read(self, remote: object) -> None:
        await read_remote(self, remote, "receive the watched video")

    def _stamp(self, frame: av.VideoFrame) -> av.VideoFrame:
        now = time.perf_counter()
        frame.pts = int((now - self._t0) * VIDEO_CLOCK_RATE)
        frame.time_base = VIDEO_TIME_BASE
        frame.opaque = FrameMeta(t_in=now, version=self._version, model_ms=0.0)
        return frame


def watch(
    subscribe_token: str, api_key: str | SecretKey | None = None, *, model: str = "lucy-latest"
) -> Session:
    """A connected, receive-only Session showing someone's running Decart session (display it,
    snapshot() it, record() it). `subscribe_token` is the host's `session.engine.subscribe_token`;
    `api_key` (or DECART_API_KEY) is the viewer's own key; `model` only sets the view's size."""
    from ...session import Session

    key = hidden(api_key)
    del api_key  # this frame is in the traceback of a failed watch: no raw key in it
    viewer = DecartViewer(subscribe_token, key)
    blank = Image.new("RGB", (2, 2))  # the pipeline's input, never read by the viewer
    return Session(model=model, engine=viewer, source=blank).connect()
