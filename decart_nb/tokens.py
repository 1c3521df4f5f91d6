"""decart_nb.tokens.create(): short-lived client tokens minted from the kernel's permanent key.

The permanent key (dct_...) never leaves the kernel; a client token (ek_... and its signed JWT)
is made for handing out: it expires (1-3600 s), can be limited to models and web origins, and
cannot mint another token. Decart's SDK does the request (POST /v1/client/tokens).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

from . import _loop
from .checks import check_number
from .engines.decart import INSTALL_HINT, redact, resolve_key
from .errors import DecartNBError, ErrorCode
from .secret_key import SecretKey
from .secure_url import HTTP, check_secret_url
from .timeouts import TOKEN_TIMEOUT_S

__all__ = ["API_BASE_URL_ENV", "ClientToken", "create"]

API_BASE_URL_ENV = "DECART_API_BASE_URL"
DEFAULT_API_BASE_URL = "https://api.decart.ai"


@dataclass(frozen=True, repr=False)
class ClientToken:
    """A client token: `token` (signed JWT, for realtime) and `api_key` (ek_..., its opaque twin).

    Read the two values from these attributes (to hand them to a browser, say). Its repr, which
    a cell shows and a saved notebook keeps, shows only their last 4 characters, enough to tell
    tokens apart: `ClientToken(api_key='***wxyz', token='***abcd', expires_at=...)`."""

    api_key: str
    token: str
    expires_at: str
    permissions: dict[str, object] | None = None
    constraints: dict[str, object] | None = None

    def __repr__(self) -> str:
        return (
            f"ClientToken(api_key={_tail(self.api_key)!r}, token={_tail(self.token)!r}, "
            f"expires_at={self.expires_at!r}, permissions={self.permissions!r}, "
            f"constraints={self.constraints!r})"
        )

    __str__ = __repr__


class _RealtimeConstraints(TypedDict, total=False):
    maxSessionDuration: int


class _Constraints(TypedDict, total=False):
    realtime: _RealtimeConstraints


class _TokenOptions(TypedDict, total=False):  # what the SDK's tokens.create takes, as given
    expires_in: int
    allowed_models: list[str]
    allowed_origins: list[str]
    constraints: _Constraints


def _tail(secret: str) -> str:
    """The last 4 characters, when that leaves most of the secret unseen."""
    return f"***{secret[-4:]}" if len(secret) >= 16 else "***"


def create(
    expires_in: int = 60,
    *,
    allowed_models: Sequence[str] | None = None,
    allowed_origins: Sequence[str] | None = None,
    max_session_duration: int | None = None,
    api_key: str | SecretKey | None = None,
    base_url: str | None = None,
) -> ClientToken:
    """Mint a client token from the kernel's key (`api_key` or DECART_API_KEY). Raises
    TOKEN_CREATE_ERROR (with the service's reason) when Decart refuses."""
    key = resolve_key(api_key)
    del api_key  # this frame is in the traceback of every failure below: no raw key in it
    seconds = int(check_number("expires_in", expires_in, 1, 3600))
    # os.getenv, not os.environ.get: stack_data would print the environment (this frame is in
    # the traceback of every failure).
    url = base_url or os.getenv(API_BASE_URL_ENV, "") or DEFAULT_API_BASE_URL
    url = check_secret_url(url, HTTP, "API base URL")
    options: _TokenOptions = {"expires_in": seconds}
    if allowed_models is not None:
        options["allowed_models"] = _strings("allowed_models", allowed_models)
    if allowed_origins is not None:
        options["allowed_origins"] = _strings("allowed_origins", allowed_origins)
    if max_session_duration is not None:
        limit = int(check_number("max_session_duration", max_session_duration, 1, 24 * 3600))
        options["constraints"] = {"realtime": {"maxSessionDuration": limit}}
    _loop.acquire()
    try:
        return _loop.run(_create(key, url, options), timeout=TOKEN_TIMEOUT_S + 5)
    finally:
        _loop.release()


def _strings(name: str, values: Sequence[str]) -> list[str]:
    if isinstance(values, str) or not all(isinstance(v, str) and v for v in values):
        raise DecartNBError(ErrorCode.INVALID_INPUT, f"{name} must be a list of non-empty strings")
    return list(values)


async def _create(key: SecretKey, url: str, options: _TokenOptions) -> ClientToken:
    try:
        from decart import DecartClient
    except ImportError as exc:
        raise DecartNBError(
            ErrorCode.SDK_NOT_INSTALLED, f"Client tokens need Decart's Python SDK: {INSTALL_HINT}"
        ) from exc
    error: DecartNBError | None = None
    client = DecartClient(api_key=key.reveal(), base_url=url, integration="decart_nb")
    try:
        made = await client.tokens.create(**options)
        return ClientToken(
            api_key=made.api_key,
            token=made.token,
            expires_at=made.expires_at,
            permissions=dict(made.permissions) if made.permissions else None,
            constraints=dict(made.constraints) if made.constraints else None,
        )
    except Exception as exc:  # noqa: BLE001 - translated below, outside the except (no key in __context__)
        error = DecartNBError(
            ErrorCode.TOKEN_CREATE_ERROR,
            f"Could not create a client token: {redact(str(exc) or type(exc).__name__, key)}",
            data={"sdk_error": type(exc).__name__},
        )
    finally:
        await client.close()
    raise error
