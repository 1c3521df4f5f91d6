"""Where a secret may travel: a URL that carries an API key or a token is https:// or wss://, or
plain http:// / ws:// to this machine only (the loopback addresses the tests' fakes listen on).
Checked before any connection is made, so a key never crosses a network in clear text."""

from __future__ import annotations

import ipaddress
import urllib.parse

from .errors import DecartNBError, ErrorCode

__all__ = ["HTTP", "WEBSOCKET", "check_secret_url", "is_loopback"]

#: (plain, encrypted) scheme pairs.
HTTP = ("http", "https")
WEBSOCKET = ("ws", "wss")


def check_secret_url(url: object, schemes: tuple[str, str], what: str) -> str:
    """`url` without surrounding blanks and trailing slashes, if it may carry a secret: scheme
    `schemes[1]` to any host, `schemes[0]` to a loopback host only. Otherwise INVALID_BASE_URL
    naming the scheme and host (never the rest of the URL: its query may hold the key)."""
    plain, secure = schemes
    parsed = _split(url)
    scheme = parsed.scheme.lower() if parsed is not None else ""
    host = _host(parsed)
    if parsed is None or not host or scheme not in schemes:
        shown = f"{scheme}://{host}" if scheme and host else "a URL without a host" if scheme else "not a URL"
        raise DecartNBError(
            ErrorCode.INVALID_BASE_URL,
            f"Invalid {what}: {shown} (expected {secure}://host)",
            data={"scheme": scheme, "host": host},
        )
    if scheme == plain and not is_loopback(host):
        raise DecartNBError(
            ErrorCode.INVALID_BASE_URL,
            f"The {what} {scheme}://{host} is plain text and would carry a secret in clear: use "
            f"{secure}:// ({plain}:// is allowed to this machine only, e.g. 127.0.0.1)",
            data={"scheme": scheme, "host": host},
        )
    assert isinstance(url, str)
    return url.strip().rstrip("/")


def _split(url: object) -> urllib.parse.SplitResult | None:
    if not isinstance(url, str):
        return None
    try:
        return urllib.parse.urlsplit(url.strip())
    except ValueError:  # an unclosed IPv6 bracket
        return None


def _host(parsed: urllib.parse.SplitResult | None) -> str:
    try:  # hostname drops any user:password@ (never shown) and lowercases
        return (parsed.hostname or "") if parsed is not None else ""
    except ValueError:  # a malformed netloc (an unclosed IPv6 bracket)
        return ""


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
