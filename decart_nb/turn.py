"""TURN credentials for `Session(ice_servers=...)`, where the kernel and the page cannot reach each
other directly (Colab, JupyterHub, a kernel behind NAT).

Each helper returns a list of RTCIceServer dicts (`{"urls", "username", "credential"}`):

    from decart_nb import Session, turn

    Session(ice_servers=turn.cloudflare(key_id, api_token))            # Cloudflare Realtime TURN
    Session(ice_servers=turn.twilio(account_sid, auth_token))          # Twilio NTS tokens
    Session(ice_servers=turn.coturn(["turn:turn.example.org:3478"], secret))  # your coturn
    Session(ice_servers=turn.turn_server("turn:turn.example.org:3478", "user", "password"))

Secrets: a provider's API secret (Cloudflare's API token, Twilio's auth token, coturn's shared
secret) is used in the kernel only, to ask for (or compute) a short-lived TURN username and
credential. Those two must go to the page, because the browser's RTCPeerConnection authenticates
to the relay itself; they expire after `ttl` seconds. The long-lived secret is never in what
these helpers return, so it never reaches the widget's state or a comm message. A static
`turn_server(...)` password does go to the page as it is: prefer expiring credentials.

Where the TURN username and credential go: to the kernel's aiortc peer, and to the page in one
comm message (`ice_servers`, sent with each offer of the page socket and when the page asks),
never in the widget's synced state (which JupyterLab's "save widget state" writes into the
notebook). The session holds them as `SecretIceServer`s, whose repr shows *** for both.

Credentials expire: a session that outlives `ttl` can no longer renew its relay, so ask for a
ttl longer than the session (the providers' default is 24 h).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from email.message import Message as HTTPMessage
from typing import IO, Required, TypedDict

from aiortc import RTCIceServer

from .checks import check_number
from .errors import DecartNBError, ErrorCode
from .secret_key import SecretKey, redact
from .secure_url import HTTP, check_secret_url
from .timeouts import TURN_TIMEOUT_S

__all__ = ["SecretIceServer", "cloudflare", "coturn", "keep_secret", "turn_server", "twilio"]


class IceServer(TypedDict, total=False):
    """An RTCIceServer dict, as the browser takes it."""

    urls: Required[list[str]]
    username: str
    credential: str


ONE_DAY = 24 * 3600  # seconds: the default ttl (the providers' own default), not a wait
MAX_ANSWER_BYTES = 1 << 20  # a credentials answer is a few hundred bytes

CLOUDFLARE_URL = "https://rtc.live.cloudflare.com"
CLOUDFLARE_KEY_ID_ENV = "CLOUDFLARE_TURN_KEY_ID"
CLOUDFLARE_TOKEN_ENV = "CLOUDFLARE_TURN_KEY_API_TOKEN"
TWILIO_URL = "https://api.twilio.com"
TWILIO_SID_ENV = "TWILIO_ACCOUNT_SID"
TWILIO_TOKEN_ENV = "TWILIO_AUTH_TOKEN"


# -- credentials you already have ------------------------------------------------------------------
def turn_server(urls: str | Sequence[str], username: str, credential: str) -> list[IceServer]:
    """A TURN server with a fixed username and password (they go to the page as they are)."""
    return [
        {
            "urls": _turn_urls(urls),
            "username": _text("username", username),
            "credential": _text("credential", credential),
        }
    ]


def coturn(
    urls: str | Sequence[str], secret: str, *, user: str = "decart_nb", ttl: float = ONE_DAY
) -> list[IceServer]:
    """Credentials for a coturn server run with `use-auth-secret` and `static-auth-secret=<secret>`
    (coturn's "TURN REST API", draft-uberti-behave-turn-rest), computed here without a request:
    username "<expiry unix time>:<user>", credential base64(HMAC-SHA1(secret, username)).
    coturn refuses them `ttl` seconds from now."""
    key = SecretKey(_text("secret", secret))
    del secret  # this frame is in the traceback of the checks below: no raw secret in it
    if not isinstance(user, str) or ":" in user:
        raise _invalid("user must be a string without ':' (coturn's separator)", "user")
    expiry = int(time.time() + check_number("ttl", ttl, 1, 30 * ONE_DAY))
    username = f"{expiry}:{user}" if user else str(expiry)
    digest = hmac.new(key.reveal().encode(), username.encode(), hashlib.sha1).digest()
    return [{"urls": _turn_urls(urls), "username": username, "credential": base64.b64encode(digest).decode()}]


# -- hosted providers ------------------------------------------------------------------------------
def cloudflare(
    key_id: str | None = None,
    api_token: str | None = None,
    *,
    ttl: float = ONE_DAY,
    base_url: str = CLOUDFLARE_URL,
) -> list[IceServer]:
    """Short-lived credentials from Cloudflare Realtime TURN for a TURN key (its id and API token;
    default: the CLOUDFLARE_TURN_KEY_ID and CLOUDFLARE_TURN_KEY_API_TOKEN environment variables).

    Follows developers.cloudflare.com/realtime/turn/generate-credentials/: POST
    /v1/turn/keys/{key_id}/credentials/generate-ice-servers with "Authorization: Bearer <token>" and
    {"ttl": seconds}; the 201 answer is {"iceServers": [{urls, username?, credential?}, ...]}. (The
    older .../credentials/generate answers one {urls, username, credential} object: read too.)
    This helper allows a ttl of up to 48 h; Cloudflare's own refusal of a ttl comes back as
    TOKEN_CREATE_ERROR with its reason."""
    key_id = _setting("key_id", key_id, CLOUDFLARE_KEY_ID_ENV)
    token = _secret("api_token", api_token, CLOUDFLARE_TOKEN_ENV)
    del api_token  # this frame is in the traceback of every failure below: no raw secret in it
    seconds = int(check_number("ttl", ttl, 1, 2 * ONE_DAY))
    url = _endpoint(
        base_url, f"/v1/turn/keys/{urllib.parse.quote(key_id, safe='')}/credentials/generate-ice-servers"
    )
    post = _Post(url, json.dumps({"ttl": seconds}).encode(), "application/json", f"Bearer {token.reveal()}")
    return _ice_servers(_call(post, "Cloudflare", (token,)), "iceServers", "Cloudflare")


def twilio(
    account_sid: str | None = None,
    auth_token: str | None = None,
    *,
    ttl: float = ONE_DAY,
    api_key_sid: str | None = None,
    base_url: str = TWILIO_URL,
) -> list[IceServer]:
    """Short-lived credentials from Twilio's Network Traversal Service (default: the
    TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN environment variables). With `api_key_sid` (SK...),
    `auth_token` is that API key's secret.

    Follows twilio.com/docs/stun-turn/api: POST /2010-04-01/Accounts/{AccountSid}/Tokens.json with
    HTTP basic auth and the form field Ttl; the 201 answer's "ice_servers" is a list of {urls (or the
    older url), username?, credential?}. Twilio accepts a ttl of up to 24 h."""
    sid = _setting("account_sid", account_sid, TWILIO_SID_ENV)
    token = _secret("auth_token", auth_token, TWILIO_TOKEN_ENV)
    del auth_token  # this frame is in the traceback of every failure below: no raw secret in it
    login = sid if api_key_sid is None else _text("api_key_sid", api_key_sid)
    seconds = int(check_number("ttl", ttl, 1, ONE_DAY))
    url = _endpoint(base_url, f"/2010-04-01/Accounts/{urllib.parse.quote(sid, safe='')}/Tokens.json")
    basic = SecretKey(base64.b64encode(f"{login}:{token.reveal()}".encode()).decode())
    body = urllib.parse.urlencode({"Ttl": seconds}).encode()
    post = _Post(url, body, "application/x-www-form-urlencoded", f"Basic {basic.reveal()}")
    return _ice_servers(_call(post, "Twilio", (token, basic)), "ice_servers", "Twilio")


# -- how the session holds them ----------------------------------------------------------------------
class SecretIceServer(RTCIceServer):
    """An RTCIceServer whose username and credential are held as SecretKeys: aiortc reads them
    as attributes (urls, username, credential, credentialType: rtcicetransport.connection_kwargs),
    while repr, str, vars() and a verbose traceback's variables show *** (a displayed
    `session.ice_servers` lands in the saved notebook, a frame's variables in a traceback)."""

    def __init__(
        self,
        urls: str | list[str],
        username: str | None = None,
        credential: str | None = None,
        credentialType: str = "password",  # aiortc's (and the browser's) name
    ) -> None:
        self.urls = urls
        self.username = username
        self.credential = credential
        self.credentialType = credentialType

    @property
    def username(self) -> str | None:
        return _revealed(self._username)

    @username.setter
    def username(self, value: str | None) -> None:
        self._username = _hidden(value)

    @property
    def credential(self) -> str | None:
        return _revealed(self._credential)

    @credential.setter
    def credential(self, value: str | None) -> None:
        self._credential = _hidden(value)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={'***' if getattr(self, name) else None!r}" for name in ("username", "credential")
        )
        return f"SecretIceServer(urls={self.urls!r}, {shown})"

    __str__ = __repr__


def keep_secret(servers: Sequence[RTCIceServer]) -> list[RTCIceServer]:
    """The session's ICE servers as SecretIceServers (the same urls, username and credential)."""
    return [
        server
        if isinstance(server, SecretIceServer)
        else SecretIceServer(server.urls, server.username, server.credential, server.credentialType)
        for server in servers
    ]


def _hidden(value: str | None) -> SecretKey | None:
    return None if value is None else SecretKey(value)


def _revealed(value: SecretKey | None) -> str | None:
    return None if value is None else value.reveal()


# -- checks -----------------------------------------------------------------------------------------
def _invalid(message: str, argument: str) -> DecartNBError:
    return DecartNBError(ErrorCode.INVALID_INPUT, message, data={"argument": argument})


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"{name} must be a non-empty string", name)
    return value


def _secret(name: str, value: str | None, env: str) -> SecretKey:
    """A provider's secret (argument or environment variable), held as a SecretKey: the frames
    of cloudflare() and twilio() are in their failures' tracebacks, which %xmode Verbose prints."""
    return SecretKey(_setting(name, value, env))


def _setting(name: str, value: str | None, env: str) -> str:
    """The argument, else the environment variable; the message names both, never a value."""
    # os.getenv, not os.environ.get: stack_data would print the environment (this frame is in
    # the traceback of a missing setting).
    found = value if value is not None else os.getenv(env)
    if not isinstance(found, str) or not found.strip():
        raise _invalid(f"{name} is missing: pass {name}= or set {env}", name)
    return found.strip()


def _turn_urls(urls: str | Sequence[str]) -> list[str]:
    listed = [urls] if isinstance(urls, str) else list(urls) if isinstance(urls, (list, tuple)) else []
    if not listed:
        raise _invalid("urls must be a TURN URL or a list of them ('turn:host:3478')", "urls")
    for url in listed:
        if not (isinstance(url, str) and url.lower().startswith(("turn:", "turns:"))):
            raise _invalid(f"TURN URLs start with turn: or turns:, got {url!r:.60}", "urls")
    return listed


def _endpoint(base_url: str, path: str) -> str:
    """https://, or http:// to this machine only (a test's fake): a secret never crosses a network
    in clear text."""
    return check_secret_url(base_url, HTTP, "base URL") + path


# -- the request -----------------------------------------------------------------------------------
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would carry the Authorization header to wherever it points: refuse it."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class _Post:
    """A POST to make; its Authorization header is held as a SecretKey (this object is in the
    frames of a failure's traceback, and a walk over them would read a Request's headers)."""

    def __init__(self, url: str, body: bytes, content_type: str, authorization: str) -> None:
        self.url, self.body, self.content_type = url, body, content_type
        self.authorization = SecretKey(authorization)

    def request(self) -> urllib.request.Request:
        headers = {"Authorization": self.authorization.reveal(), "Content-Type": self.content_type}
        return urllib.request.Request(self.url, data=self.body, method="POST", headers=headers)


def _call(post: _Post, provider: str, secrets: tuple[SecretKey, ...]) -> object:
    """The provider's JSON answer. The error is raised outside the except clauses, so it chains no
    exception whose frames hold the request (and its Authorization header); no frame of ours
    holds the request either."""
    failure: DecartNBError
    try:
        with _OPENER.open(post.request(), timeout=TURN_TIMEOUT_S) as response:
            body = response.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as exc:
        failure = _refused(provider, exc.code, _reason(exc, secrets))
    except (urllib.error.URLError, OSError) as exc:  # unreachable, refused, timed out
        failure = _unreachable(provider, getattr(exc, "reason", None) or exc, secrets)
    else:
        try:
            answer: object = json.loads(body)
            return answer
        except ValueError:
            failure = _bad_answer(provider, "not JSON")
    raise failure


def _unreachable(provider: str, reason: object, secrets: tuple[SecretKey, ...]) -> DecartNBError:
    if isinstance(reason, TimeoutError):
        what = f"did not answer within {TURN_TIMEOUT_S:g} s"
    else:
        what = f"could not be reached ({_redact(str(reason) or type(reason).__name__, secrets)})"
    return DecartNBError(
        ErrorCode.TOKEN_CREATE_ERROR, f"{provider} {what}: no TURN credentials", data={"provider": provider}
    )


def _refused(provider: str, status: int, reason: str) -> DecartNBError:
    data = {"provider": provider, "status": status}
    detail = f": {reason}" if reason else ""
    if status in (401, 403):
        return DecartNBError(
            ErrorCode.INVALID_API_KEY,
            f"{provider} refused the credentials (HTTP {status}){detail}: check the id and its secret",
            data=data,
        )
    return DecartNBError(
        ErrorCode.TOKEN_CREATE_ERROR,
        f"{provider} gave no TURN credentials (HTTP {status}){detail}",
        data=data,
    )


def _reason(exc: urllib.error.HTTPError, secrets: tuple[SecretKey, ...]) -> str:
    """The provider's own short explanation (its JSON message, else the text), secrets removed."""
    try:
        text = exc.read(4096).decode("utf-8", "replace")
    except OSError as read_error:
        text = f"(no body: {type(read_error).__name__})"
    finally:
        exc.close()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, Mapping):
        errors = parsed.get("errors")
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], Mapping) else {}
        text = str(parsed.get("message") or parsed.get("error") or first.get("message") or text)
    return _redact(" ".join(text.split())[:200], secrets)


def _redact(text: str, secrets: tuple[SecretKey, ...]) -> str:
    for secret in secrets:
        text = redact(text, secret)
    return text


def _bad_answer(provider: str, why: str) -> DecartNBError:
    return DecartNBError(
        ErrorCode.TOKEN_CREATE_ERROR,
        f"{provider}'s answer has no usable ICE servers ({why})",
        data={"provider": provider},
    )


def _ice_servers(answer: object, field: str, provider: str) -> list[IceServer]:
    """The answer's servers as RTCIceServer dicts (a single object read as a list of one; Twilio's
    older "url" read as "urls")."""
    found = answer.get(field) if isinstance(answer, Mapping) else None
    if found is None:
        raise _bad_answer(provider, f"no {field!r}")
    entries = found if isinstance(found, list) else [found]
    servers = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise _bad_answer(provider, f"an entry is {type(entry).__name__}")
        urls = entry.get("urls", entry.get("url"))
        listed = [urls] if isinstance(urls, str) else urls if isinstance(urls, list) else []
        if not listed or not all(isinstance(u, str) and u.lower().startswith(_SCHEMES) for u in listed):
            raise _bad_answer(provider, f"urls {urls!r:.60}")
        server: IceServer = {"urls": listed}
        if entry.get("username") is not None:
            server["username"] = str(entry["username"])
        if entry.get("credential") is not None:
            server["credential"] = str(entry["credential"])
        servers.append(server)
    if not any(u.lower().startswith(("turn:", "turns:")) for s in servers for u in s["urls"]):
        raise _bad_answer(provider, "no turn: URL")
    return servers


_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")
