"""SDK exceptions -> DecartNBError with Decart's realtime codes, and never with the API key."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import DecartNBError, ErrorCode, classify_realtime_error
from .sdk import SecretKey, redact

if TYPE_CHECKING:
    from .sdk import DecartSDK

__all__ = ["translate", "is_permanent", "PERMANENT_ERRORS"]

# Decart's SDK never retries a connection whose error text contains one of these.
PERMANENT_ERRORS = (
    "permission denied",
    "not allowed",
    "invalid session",
    "401",
    "invalid api key",
    "unauthorized",
)
# Texts the SDK writes itself (timeouts, its own channel failures); any other bare SDK error
# carries the text the server sent (an `error` message, or a rejected acknowledgement).
_SDK_OWN_TEXTS = (
    "prompt acknowledgment timed out",
    "image send timed out",
    "initial image acknowledgment timed out",
    "initial prompt acknowledgment timed out",
    "passthrough acknowledgment timed out",
    "connection timeout",
    "control channel",
    "livekit",
    "invalid livekit room info",
    "http session not available",
    "watch-stream",
    "webrtc error",
)


def is_permanent(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in PERMANENT_ERRORS)


def translate(
    exc: BaseException, doing: str, sdk: DecartSDK, key: SecretKey, *, event: bool = False
) -> DecartNBError:
    """A DecartNBError for an SDK failure, classified in Decart's order (server-sent first)."""
    if isinstance(exc, DecartNBError):
        return exc
    text = redact(str(exc) or type(exc).__name__, key)
    if isinstance(exc, (sdk.invalid_input, *sdk.validation_errors)):  # the SDK's checks, pydantic's too
        code = ErrorCode.INVALID_INPUT
    elif isinstance(exc, TimeoutError):
        code = ErrorCode.WEBRTC_TIMEOUT_ERROR
    else:
        code = classify_realtime_error(text, from_server=_from_server(exc, sdk))
    message = f"Could not {doing}: {text}"
    if is_permanent(text):
        message += " (not retried: check the API key and its permissions for this model)"
    cause = exc if _clean(exc, key) else None
    return DecartNBError(
        code, message, data={"sdk_error": type(exc).__name__, "during": doing, "event": event}, cause=cause
    )


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        nxt = getattr(current, "cause", None)
        current = nxt if isinstance(nxt, BaseException) else (current.__cause__ or current.__context__)
    return seen


def _from_server(exc: BaseException, sdk: DecartSDK) -> bool:
    """The SDK re-raises a server's text as a bare SDK error (no cause); its own failures either
    wrap another exception or use one of its own texts."""
    innermost = _chain(exc)[-1]
    if not isinstance(innermost, sdk.error) or isinstance(innermost, sdk.invalid_input):
        return False
    lowered = str(innermost).lower()
    return not any(lowered.startswith(own) for own in _SDK_OWN_TEXTS)


def _clean(exc: BaseException, key: SecretKey) -> bool:
    """True when no exception in the chain mentions the key (so it may ride along as the cause)."""
    return all(redact(str(e), key) == str(e) for e in _chain(exc))
