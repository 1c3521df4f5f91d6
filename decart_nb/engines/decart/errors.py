"""SDK exceptions -> DecartNBError with Decart's realtime codes, and never with the API key."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from ...errors import DecartNBError, ErrorCode, classify_realtime_error
from .sdk import SecretKey, redact

if TYPE_CHECKING:
    from .sdk import DecartSDK

__all__ = [
    "NO_CREDITS",
    "PERMANENT_ERRORS",
    "QUEUE_TIMED_OUT",
    "describe",
    "detach",
    "ends_for_good",
    "is_permanent",
    "translate",
]

logger = logging.getLogger("decart_nb")

# Decart's SDK never retries a connection whose error text contains one of these.
PERMANENT_ERRORS = (
    "permission denied",
    "not allowed",
    "invalid session",
    "401",
    "invalid api key",
    "unauthorized",
)
# Decart refused the key: HTTP 401 on the control channel's upgrade (aiohttp's text, or its
# exception's status), or the server's `error` answer. The same texts the SDK never retries.
_REFUSED_KEY = re.compile(r"\b401\b|invalid api key|unauthori[sz]ed", re.IGNORECASE)
#: Decart ran out of the account's credits (a `generation_ended` reason, or an `error` text):
#: never retried either, since a new session is refused the same way.
NO_CREDITS = ("insufficient credits", "insufficient_credits")
#: The start of decart_nb's text when Decart's queue outlasts DECART_QUEUE_TIMEOUT_S (never retried).
QUEUE_TIMED_OUT = "decart's queue timed out"
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
    QUEUE_TIMED_OUT,
)


def is_permanent(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in (*PERMANENT_ERRORS, *NO_CREDITS))


def ends_for_good(error: DecartNBError) -> bool:
    """A refused key or no credits: retrying (or reconnecting) cannot help."""
    return error.code in (ErrorCode.INVALID_API_KEY, ErrorCode.INSUFFICIENT_CREDITS)


def translate(
    exc: BaseException, doing: str, sdk: DecartSDK, key: SecretKey, *, event: bool = False
) -> DecartNBError:
    """A DecartNBError for an SDK failure, classified in Decart's order (server-sent first).

    It carries no link to `exc`: not as its cause, context or traceback. The SDK's frames hold
    the raw key (its `api_key` arguments, the control channel's URL), and a verbose traceback
    (IPython's %xmode Verbose, capture_locals, stack_data) would print them. What the cause
    said stays readable, redacted, in `data["sdk_cause"]`."""
    if isinstance(exc, DecartNBError):
        return detach(exc, key)
    text = redact(str(exc) or type(exc).__name__, key)
    if isinstance(exc, (sdk.invalid_input, *sdk.validation_errors)):  # the SDK's checks, pydantic's too
        code = ErrorCode.INVALID_INPUT
    elif _refused_key(exc, text):
        code = ErrorCode.INVALID_API_KEY
    elif any(marker in text.lower() for marker in NO_CREDITS):
        code = ErrorCode.INSUFFICIENT_CREDITS
    elif isinstance(exc, TimeoutError):
        code = ErrorCode.WEBRTC_TIMEOUT_ERROR
    else:
        code = classify_realtime_error(text, from_server=_from_server(exc, sdk))
    message = f"Could not {doing}: {text}"
    if code == ErrorCode.INSUFFICIENT_CREDITS:
        message += " (not retried: add credits to the account, then connect again)"
    elif is_permanent(text):
        message += " (not retried: check the API key and its permissions for this model)"
    data = {"sdk_error": type(exc).__name__, "sdk_cause": describe(exc, key), "during": doing, "event": event}
    logger.debug("decart_nb: %s failed: %s", doing, data["sdk_cause"])
    return DecartNBError(code, message, data=data)


def _refused_key(exc: BaseException, text: str) -> bool:
    """HTTP 401 anywhere in the chain (aiohttp's handshake error has a status), or the words."""
    if any(getattr(link, "status", None) == 401 for link in _chain(exc)):
        return True
    return _REFUSED_KEY.search(text) is not None


def detach(error: DecartNBError, key: SecretKey) -> DecartNBError:
    """`error` cut from whatever it was raised over or through (the SDK's frames among them);
    a cause it named is kept as a redacted description."""
    linked = error.__cause__ or error.cause or (None if error.__suppress_context__ else error.__context__)
    if linked is not None:
        error.data.setdefault("cause", describe(linked, key))
    error.cause = error.__cause__ = error.__context__ = None
    error.__suppress_context__ = True
    return error.with_traceback(None)


def describe(exc: BaseException, key: SecretKey) -> str:
    """The exception chain as "Type: message <- Type <- Type: message" (a message that repeats
    the one before it is left out), the key redacted."""
    parts, previous = [], None
    for link in _chain(exc):
        text = str(link)
        parts.append(type(link).__name__ if text in ("", previous) else f"{type(link).__name__}: {text}")
        previous = text
    return redact(" <- ".join(parts), key)[:1000]


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
