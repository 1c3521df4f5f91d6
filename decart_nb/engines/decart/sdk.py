"""Decart's Python SDK, loaded on demand, and the guards that keep the API key in the kernel.

The engine talks to the SDK only through `DecartSDK`, a bundle of the few SDK names it uses, so
the tests can hand it a fake with the same shape; users always get `load_sdk()`, the real SDK.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import av

from ...errors import DecartNBError, ErrorCode
from ...secret_key import SecretKey, redact
from ...secure_url import WEBSOCKET, check_secret_url

__all__ = [
    "INSTALL_HINT",
    "DecartSDK",
    "LocalFeed",
    "MediaBridge",
    "QueueMessage",
    "RealtimeSession",
    "RealtimeStream",
    "SecretKey",
    "guard_sdk_logs",
    "load_sdk",
    "redact",
    "resolve_base_url",
    "resolve_key",
]

INSTALL_HINT = 'pip install "decart_nb[decart]"  (or: pip install "decart[realtime]>=0.2.4")'
# Loggers of the SDK (and tenacity's retry log, which goes through the manager's logger).
_SDK_LOGGERS = (
    "decart",
    "decart.realtime.client",
    "decart.realtime.livekit_manager",
    "decart.realtime.livekit_connection",
)


def resolve_key(api_key: str | SecretKey | None) -> SecretKey:
    """The key from the argument or DECART_API_KEY (as Decart's SDK resolves it), or INVALID_API_KEY."""
    if isinstance(api_key, SecretKey):
        api_key = api_key.reveal()
    if api_key is not None and not isinstance(api_key, str):
        raise DecartNBError(ErrorCode.INVALID_API_KEY, "api_key must be a string")
    # os.getenv, not os.environ.get: stack_data would print the environment (this frame is in
    # the traceback of a missing key).
    key = (api_key or "").strip() or os.getenv("DECART_API_KEY", "").strip()
    if not key:
        raise DecartNBError(
            ErrorCode.INVALID_API_KEY,
            "Missing Decart API key. Pass Session(engine='decart', api_key=...) or set the "
            "DECART_API_KEY environment variable in the kernel's environment. Keep permanent keys "
            "(dct_...) out of notebooks: read them from the environment or a secrets store.",
        )
    return SecretKey(key)


class _RedactKeys(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


_REDACTOR = _RedactKeys()


def guard_sdk_logs() -> None:
    """Redact keys from the SDK's log records (its errors quote the control channel's URL)."""
    # A logger's filters only see records logged on it, not its children's: guard each one.
    for name in _SDK_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)


class LocalFeed(Protocol):
    """The input side handed to the SDK: `track` goes to connect(), `push` feeds it frames."""

    @property
    def track(self) -> object:
        """The SDK's local track (LiveKit's), handed to connect() as it is."""
        ...

    def push(self, frame: av.VideoFrame) -> None: ...

    async def close(self) -> None: ...


class MediaBridge(Protocol):
    """Moves frames between aiortc and the SDK's media (LiveKit tracks)."""

    def open_local(self, width: int, height: int) -> LocalFeed: ...

    def remote_frames(self, remote: object) -> AsyncIterator[av.VideoFrame]:
        """yuv420p frames of the SDK's remote track, newest first: frames the reader is too
        slow for are dropped, never queued."""
        ...


class RealtimeStream(Protocol):
    """What a viewer uses of the SDK's SubscribeClient (and the engine of its RealtimeClient)."""

    def on(self, event: str, callback: Callable[..., None]) -> None: ...

    async def disconnect(self) -> None: ...


class RealtimeSession(RealtimeStream, Protocol):
    """The SDK's RealtimeClient as the engine uses it."""

    @property
    def subscribe_token(self) -> str | None: ...

    @property
    def set(self) -> Callable[..., Awaitable[None]]:
        """set(SetInput): takes what DecartSDK.set_input made (an SDK type decart_nb never reads)."""
        ...

    async def set_prompt(self, prompt: str, enhance: bool = ...) -> None: ...

    async def set_image(self, image: bytes | None) -> None: ...


class QueueMessage(Protocol):
    """The SDK's queue_position message."""

    @property
    def position(self) -> int: ...

    @property
    def queue_size(self) -> int: ...


# The SDK's value types (its options, model, prompt and input objects) are `object` here:
# decart_nb makes them with the SDK's own constructors and hands them back, never reading one.
@dataclass(frozen=True)
class DecartSDK:
    """The SDK names the engine uses (real ones from `load_sdk`, or a test fake)."""

    # RealtimeClient.connect(base_url, api_key, local_track, options, integration=, on_session_started=,
    # on_queue_position=, on_generation_ended=): see hooks.py for the three extra events.
    connect: Callable[..., Awaitable[RealtimeSession]]
    connect_options: Callable[
        ..., object
    ]  # RealtimeConnectOptions(model=, on_remote_stream=, initial_state=)
    model_state: Callable[..., object]  # ModelState(prompt=, image=)
    prompt: Callable[..., object]  # Prompt(text=, enhance=)
    set_input: Callable[..., object]  # SetInput(prompt=, image=, enhance=)
    model: Callable[[str], object]  # models.realtime(name)
    base_url: str  # DecartClient's realtime_base_url
    error: type[BaseException]  # DecartSDKError, the base of every SDK error
    invalid_input: type[BaseException]  # InvalidInputError
    media: MediaBridge
    #: image_only(client, jpeg | None): an image (or passthrough) with an explicit null prompt
    #: (None: the client's set_image(image), which keeps the server's prompt).
    image_only: Callable[[RealtimeSession, bytes | None], Awaitable[None]] | None = None
    #: RealtimeClient.subscribe(base_url, api_key, SubscribeOptions(token=, on_remote_stream=)):
    #: a receive-only view of a running session (None: this SDK cannot).
    subscribe: Callable[..., Awaitable[RealtimeStream]] | None = None
    subscribe_options: Callable[..., object] | None = None
    #: The SDK's input types validate with pydantic: these errors mean INVALID_INPUT.
    validation_errors: tuple[type[BaseException], ...] = ()


def load_sdk() -> DecartSDK:
    """The real SDK, or SDK_NOT_INSTALLED saying how to install it."""
    try:
        import decart
        import pydantic
        from decart.realtime import RealtimeClient, RealtimeConnectOptions, SetInput, SubscribeOptions

        from . import hooks
        from .livekit import LiveKitBridge
    except ImportError as exc:
        raise DecartNBError(
            ErrorCode.SDK_NOT_INSTALLED,
            f"The decart engine needs Decart's Python SDK with its realtime extra: {INSTALL_HINT}",
            cause=exc,
        ) from exc
    return DecartSDK(
        connect=hooks.connect,
        connect_options=RealtimeConnectOptions,
        model_state=decart.ModelState,
        prompt=decart.Prompt,
        set_input=SetInput,
        model=hooks.model,
        base_url=_default_base_url(decart.DecartClient),
        error=decart.DecartSDKError,
        invalid_input=decart.InvalidInputError,
        media=LiveKitBridge(),
        image_only=hooks.image_only,
        subscribe=RealtimeClient.subscribe,
        subscribe_options=SubscribeOptions,
        validation_errors=(pydantic.ValidationError,),
    )


def _default_base_url(client_type: type) -> str:
    default = inspect.signature(client_type).parameters["realtime_base_url"].default
    return str(default)


BASE_URL_ENV = "DECART_REALTIME_BASE_URL"


def resolve_base_url(base_url: str | None, default: str) -> str:
    """The realtime (WebSocket) base URL: the argument, DECART_REALTIME_BASE_URL, or the SDK's.
    The key rides in its query, so it is wss:// (ws:// to this machine only, for tests)."""
    if base_url is not None and not isinstance(base_url, str):
        raise DecartNBError(ErrorCode.INVALID_BASE_URL, "base_url must be a string")
    url = (base_url or "").strip() or os.getenv(BASE_URL_ENV, "").strip() or default
    return check_secret_url(url, WEBSOCKET, "realtime base URL")
