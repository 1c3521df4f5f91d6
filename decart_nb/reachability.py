"""decart_nb.diagnose(): can this kernel reach Decart? DNS, TCP 443, STUN/TURN over UDP.

Each check gets a verdict ("ok", "failed", "untested") and a plain sentence. The checks run in
parallel with short timeouts, so an offline kernel gets its answer in a few seconds. Every host
and port is a parameter (the tests point them at 127.0.0.1); nothing here sends the API key.
"""

from __future__ import annotations

import os
import secrets
import socket
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html import escape
from typing import Literal

__all__ = ["DEFAULT_HOSTS", "Check", "Diagnosis", "diagnose"]

Verdict = Literal["ok", "failed", "untested"]

# Decart's network needs (see docs/decart_engine.md): API, realtime signalling, platform, TURN, media.
DEFAULT_HOSTS = {
    "api": "api.decart.ai",
    "signalling": "api3.decart.ai",
    "platform": "platform.decart.ai",
    "turn": "turn.decart.ai",
    "media": "lk.decart.ai",
}
_STUN_MAGIC = 0x2112A442
_STUN_BINDING_REQUEST = 0x0001
_STUN_BINDING_SUCCESS = 0x0101


@dataclass(frozen=True)
class Check:
    name: str
    target: str
    verdict: Verdict
    detail: str


@dataclass
class Diagnosis:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.verdict != "failed" for c in self.checks)

    @property
    def summary(self) -> str:
        failed = [c for c in self.checks if c.verdict == "failed"]
        dns = [c for c in self.checks if c.name.startswith("DNS")]
        if dns and all(c.verdict == "failed" for c in dns):
            return "Offline: no Decart host name resolves (no network, or DNS is blocked)."
        if not failed:
            return "Decart looks reachable from this kernel."
        if all(c.name.startswith(("UDP", "STUN")) for c in failed):
            return (
                "Signalling works but UDP is blocked: sessions may connect and then freeze "
                "(open UDP 3478 and 7882 outbound, or use a network without an intercepting proxy)."
            )
        return f"{len(failed)} check(s) failed: " + "; ".join(f"{c.name} {c.target}" for c in failed)

    def __str__(self) -> str:
        width = max((len(c.name) for c in self.checks), default=0)
        lines = [f"{c.verdict:<9}{c.name:<{width + 2}}{c.target:<28}{c.detail}" for c in self.checks]
        return "\n".join([*lines, self.summary])

    def __repr__(self) -> str:
        return f"<decart_nb.Diagnosis ok={self.ok}: {self.summary}>"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{escape(c.verdict)}</td><td>{escape(c.name)}</td><td>{escape(c.target)}</td>"
            f"<td>{escape(c.detail)}</td></tr>"
            for c in self.checks
        )
        return f"<table>{rows}</table><p>{escape(self.summary)}</p>"


def diagnose(
    hosts: dict[str, str] | None = None,
    *,
    https_port: int = 443,
    stun_port: int = 3478,
    timeout: float = 3.0,
) -> Diagnosis:
    """Check the network paths a Decart session needs, from this kernel. `hosts` overrides any of
    DEFAULT_HOSTS (keys: api, signalling, platform, turn, media)."""
    names = DEFAULT_HOSTS | (hosts or {})
    probes: list[Callable[[], Check]] = [
        *(lambda role=role: _dns(role, names[role]) for role in names),
        lambda: _tcp("TCP 443 API", names["api"], https_port, timeout),
        lambda: _tcp("TCP 443 signalling", names["signalling"], https_port, timeout),
        lambda: _tcp("TCP 443 TURN/TLS", names["turn"], https_port, timeout),
        lambda: _stun(names["turn"], stun_port, timeout),
        lambda: Check(
            "UDP 7882 media",
            f"{names['media']}:7882",
            "untested",
            "only a live session can test it (a frozen picture after connecting points here)",
        ),
        _key_present,
    ]
    with ThreadPoolExecutor(max_workers=len(probes), thread_name_prefix="decart_nb-diagnose") as pool:
        return Diagnosis([f.result() for f in [pool.submit(p) for p in probes]])


def _dns(role: str, host: str) -> Check:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        return Check(f"DNS {role}", host, "failed", f"does not resolve ({exc.strerror or exc})")
    return Check(f"DNS {role}", host, "ok", f"resolves to {infos[0][4][0]}")


def _tcp(name: str, host: str, port: int, timeout: float) -> Check:
    target = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except TimeoutError:
        return Check(name, target, "failed", f"no answer within {timeout:g} s (a firewall drops it?)")
    except OSError as exc:
        return Check(name, target, "failed", f"cannot connect ({exc.strerror or exc})")
    return Check(name, target, "ok", "connects")


def _stun(host: str, port: int, timeout: float) -> Check:
    """A STUN binding request over UDP: does UDP reach Decart's TURN server and come back?"""
    name, target = "UDP STUN/TURN", f"{host}:{port}"
    transaction = secrets.token_bytes(12)
    request = struct.pack(">HHI", _STUN_BINDING_REQUEST, 0, _STUN_MAGIC) + transaction
    try:
        address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(address[0], socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.sendto(request, address[4])
            reply, _ = sock.recvfrom(2048)
    except TimeoutError:
        return Check(name, target, "failed", f"no STUN answer within {timeout:g} s (UDP blocked?)")
    except OSError as exc:
        return Check(name, target, "failed", f"cannot send or receive UDP ({exc.strerror or exc})")
    kind = struct.unpack(">H", reply[:2])[0] if len(reply) >= 20 else None
    if kind != _STUN_BINDING_SUCCESS or reply[8:20] != transaction:
        return Check(name, target, "failed", "answered, but not with a STUN binding response")
    return Check(name, target, "ok", "STUN binding answered")


def _key_present() -> Check:
    present = bool(os.environ.get("DECART_API_KEY", "").strip())
    detail = "set in the kernel's environment" if present else "not set (pass api_key=... instead)"
    return Check("API key", "DECART_API_KEY", "ok" if present else "untested", detail)
