"""The few things decart_nb needs from Decart's SDK (0.2.x) that its public API does not offer.

- `session_started`: the SDK finishes each connection attempt (the initial one and every
  reconnect) by sending its own initial state or passthrough `set_image` and waiting for that
  ack, and only THEN reports the new server session. A restore sent before that would have its
  ack taken by the SDK's wait (one pending image ack per connection), so decart_nb restores on
  this signal, never on a state change.
- `queue_position`: the SDK parses the message and has a configuration slot for it, but does
  not wire the slot to its client.
- `generation_ended`: the SDK parses it and only logs it ("not exposed publicly").
- the room-info wait: the SDK waits 15 s (LIVEKIT_HANDSHAKE_TIMEOUT) for `livekit_room_info`
  after `livekit_join`, and a queue longer than that fails the attempt, which its retry re-queues
  at the back, with no word to the user. Once Decart has reported a queue position, decart_nb
  waits up to DECART_QUEUE_TIMEOUT_S instead, and a queue longer than that ends the connect with
  an error that says so ("Decart's queue timed out ...", never retried: a retry would queue
  anew). A server that says nothing at all still gets the SDK's 15 s and its retries.
- `never_retry`: the SDK's list of error texts it never retries (a refused key...) lacks Decart's
  "Insufficient credits": without it a connect, or a reconnect after the credits ran out, would
  be tried five times (1+2+4+8 s) for the same answer. decart_nb adds it to that list.
- `image_only`: a `set_image` with an explicit `"prompt": null`, as the SDK itself sends for
  passthrough on connect. The public set()/set_image() omit an unset prompt, and an absent
  prompt keeps the server's prompt: passthrough (no image either) and an image-only set() (a
  whole-state replace in Decart's semantics) would leave the old prompt live.

Each reaches into one private attribute; when a later SDK lacks it the hook is simply absent
(no events), and `image_only` falls back to the public set_image().
Imported only when the SDK is installed.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from typing import TypeVar

import aiohttp
from decart.errors import DecartSDKError, WebRTCError
from decart.models import RealTimeModelDefinition
from decart.models import models as decart_models
from decart.realtime import RealtimeClient, RealtimeConnectOptions, livekit_manager
from decart.realtime.client import UPDATE_TIMEOUT_S
from decart.realtime.livekit_manager import LiveKitManager
from decart.realtime.messages import LiveKitRoomInfoMessage, SetAvatarImageMessage
from livekit.rtc import LocalVideoTrack

from ... import timeouts
from .errors import NO_CREDITS, QUEUE_TIMED_OUT  # QUEUE_TIMED_OUT: the text below, lower case
from .sdk import RealtimeSession

__all__ = ["connect", "image_only", "model"]

logger = logging.getLogger("decart_nb")
Hook = Callable[[object], None]
# The SDK's private connection object (LiveKitConnection), patched through getattr/setattr: a later
# SDK may lack what is patched, and then the hook is simply absent.
_Patched = TypeVar("_Patched")


async def connect(
    base_url: str,
    api_key: str,
    local_track: LocalVideoTrack | None,
    options: RealtimeConnectOptions,
    integration: str | None = None,
    *,
    on_session_started: Hook | None = None,
    on_queue_position: Hook | None = None,
    on_generation_ended: Hook | None = None,
) -> RealtimeClient:
    """RealtimeClient.connect, with the three extra events delivered as they happen (the SDK's
    own events stay buffered until connect returns, as the SDK documents)."""
    hooks = {
        "session_started": on_session_started,
        "queue_position": on_queue_position,
        "generation_ended": on_generation_ended,
    }
    never_retry((*NO_CREDITS, QUEUE_TIMED_OUT))
    client_type = _client_type(hooks)
    return await client_type.connect(base_url, api_key, local_track, options, integration=integration)


def never_retry(texts: tuple[str, ...]) -> None:
    """Add `texts` to the SDK's permanent errors (lower case, matched as substrings, as its own)."""
    markers = getattr(livekit_manager, "PERMANENT_ERRORS", None)
    if isinstance(markers, list):
        markers.extend(text for text in texts if text not in markers)


def model(name: str) -> RealTimeModelDefinition:
    """The SDK's definition of a realtime model (ModelNotFoundError for an unknown name)."""
    return decart_models.realtime(name)  # type: ignore[arg-type]  # the SDK checks the name


def _client_type(hooks: dict[str, Hook | None]) -> type[RealtimeClient]:
    class HookedClient(RealtimeClient):
        def __init__(
            self, manager: LiveKitManager, http_session: aiohttp.ClientSession | None = None
        ) -> None:
            super().__init__(manager, http_session)
            config = getattr(manager, "_config", None)
            if config is not None and hasattr(config, "on_queue_position"):
                config.on_queue_position = lambda message: _call(hooks["queue_position"], message)
            create = getattr(manager, "_create_connection", None)
            if callable(create):
                ended = hooks["generation_ended"]
                _patch(manager, "_create_connection", lambda: _wait_in_queue(_spy_ended(create(), ended)))

        def _handle_session_started(self, msg: LiveKitRoomInfoMessage) -> None:
            super()._handle_session_started(msg)
            _call(hooks["session_started"], msg)

    return HookedClient


def _patch(target: object, name: str, value: object) -> None:
    """Replace one of the SDK's private members (what this module exists for)."""
    setattr(target, name, value)


def _spy_ended(connection: _Patched, hook: Hook | None) -> _Patched:
    handle = getattr(connection, "_handle_message", None)
    if hook is None or handle is None:
        return connection

    async def handle_message(data: dict[str, object]) -> None:
        await handle(data)
        if isinstance(data, dict) and data.get("type") == "generation_ended":
            _call(hook, data)

    _patch(connection, "_handle_message", handle_message)
    return connection


def _wait_in_queue(connection: _Patched) -> _Patched:
    """The connection's room-info wait, extended once Decart reports a queue position."""
    join = getattr(connection, "_join_livekit_room", None)
    reported = getattr(connection, "_on_queue_position", None)
    if join is None or not hasattr(connection, "_on_queue_position"):
        return connection
    last: list[object] = []  # the newest queue_position message of this attempt

    def on_queue_position(message: object) -> None:
        last[:] = [message]
        if reported is not None:
            reported(message)

    async def join_room(timeout: float) -> object:
        limit = timeouts.DECART_QUEUE_TIMEOUT_S  # read now: a test may shorten it
        # The SDK's own wait inside must never be the one to run out: it would fail with its own
        # "room info timed out", which the SDK retries at the back of the queue. Its timer starts
        # before the waits below, so it gets a margin past them; they always decide and cancel it.
        task = asyncio.ensure_future(join(timeout=timeout + limit + timeouts.DECART_QUEUE_JOIN_MARGIN_S))
        try:
            await asyncio.wait({task}, timeout=timeout)  # the SDK's own wait, for a silent server
            if not task.done() and last:
                await asyncio.wait({task}, timeout=limit)  # queued: wait for our turn
            if task.done():
                return task.result()
            if not last:
                raise WebRTCError("LiveKit room info timed out")  # the SDK's words: it retries
            position, size = getattr(last[0], "position", "?"), getattr(last[0], "queue_size", "?")
            raise WebRTCError(
                f"Decart's queue timed out: not admitted within {timeout + limit:g} s (last at position "
                f"{position} of {size}); not retried, since a retry queues anew: connect again later"
            )
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    _patch(connection, "_on_queue_position", on_queue_position)
    _patch(connection, "_join_livekit_room", join_room)
    return connection


def _call(hook: Hook | None, value: object) -> None:
    if hook is None:
        return
    try:
        hook(value)
    except Exception:  # the SDK's own callbacks are guarded the same way: log, never break it
        logger.exception("decart_nb: a Decart event handler failed")


async def image_only(client: RealtimeSession, image: bytes | None) -> None:
    """Image (or none: passthrough) and an explicit null prompt, acknowledged like the SDK's own."""
    manager = getattr(client, "_manager", None)
    if manager is None or not hasattr(manager, "register_image_set_wait"):
        await client.set_image(image)
        return
    data = None if image is None else base64.b64encode(image).decode("ascii")
    event, result = manager.register_image_set_wait()
    try:
        await manager.send_message(SetAvatarImageMessage(type="set_image", image_data=data, prompt=None))
        try:
            await asyncio.wait_for(event.wait(), UPDATE_TIMEOUT_S)
        except TimeoutError:
            raise DecartSDKError("Image send timed out") from None
        if not result["success"]:
            raise DecartSDKError(result.get("error") or "Failed to set image")
    finally:
        manager.unregister_image_set_wait()
