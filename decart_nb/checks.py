"""Argument checks shared by the Session, sweeps and the panel: a wrong type or value fails with
INVALID_INPUT and a message that names the argument, before anything changes.

Strictness follows pydantic's strict mode, as Decart's SDK users would expect: a flag must be a
bool (not 1, "yes" or None), a number must be a real number (not a bool, not a string, not NaN).
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Collection, Mapping
from typing import TypeVar, overload

import numpy as np
from aiortc import RTCIceServer

from .errors import DecartNBError, ErrorCode

__all__ = [
    "check_bool",
    "check_choice",
    "check_ice_servers",
    "check_mapping",
    "check_number",
    "looks_like_url",
]

# Schemes of at least two letters: "C:\\photos\\a.png" is a Windows path, not a URL.
V = TypeVar("V")
_URL = re.compile(r"^\s*(https?|ftps?|data|file|blob|wss?|s3|gs):", re.IGNORECASE)


def invalid(message: str, **data: object) -> DecartNBError:
    return DecartNBError(ErrorCode.INVALID_INPUT, message, data=data)


def _type_name(value: object) -> str:
    kind = type(value)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"


def check_bool(name: str, value: object) -> bool:
    """True or False only. numpy's bool is accepted too: it is a truth value, not a guess at one
    (whereas 1, "yes" or None would be)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise invalid(f"{name} must be True or False, not {_type_name(value)} {value!r:.40}", argument=name)


def check_choice(name: str, value: object, choices: Collection[str]) -> str:
    if isinstance(value, str) and value in choices:
        return value
    options = ", ".join(repr(c) for c in choices)
    raise invalid(f"{name} must be one of {options}, not {value!r:.60}", argument=name)


def check_number(name: str, value: object, low: float, high: float, *, low_inclusive: bool = True) -> float:
    """A finite real number (int, float or a numpy number, never a bool) within [low, high]
    (or (low, high] when low_inclusive is False)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise invalid(f"{name} must be a number, not {_type_name(value)} {value!r:.40}", argument=name)
    number = float(value)
    if not math.isfinite(number):
        raise invalid(f"{name} must be a finite number, got {number}", argument=name)
    above_low = number >= low if low_inclusive else number > low
    if not (above_low and number <= high):
        bracket = "[" if low_inclusive else "("
        raise invalid(f"{name} must be within {bracket}{low:g}, {high:g}], got {number:g}", argument=name)
    return number


@overload
def check_mapping(name: str, value: Mapping[str, V] | None) -> dict[str, V]: ...
@overload
def check_mapping(name: str, value: object) -> dict[str, object]: ...
def check_mapping(name: str, value: object) -> dict[str, V] | dict[str, object]:
    """None (empty) or a mapping with string keys, e.g. controls={"strength": 0.5}. (Typed per its
    input: the values are not checked here, so they are what the caller's type said they were.)"""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise invalid(
            f"{name} must be a dict like {{'strength': 0.5}}, not {_type_name(value)}", argument=name
        )
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise invalid(f"{name} names must be strings, got {bad[0]!r}", argument=name)
    return dict(value)


def looks_like_url(value: object) -> bool:
    """True for a string that is a URL (http(s), data:, file:, ...): decart_nb never fetches one."""
    return isinstance(value, str) and _URL.match(value) is not None


_ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


def check_ice_servers(servers: object) -> list[object]:
    """Session(ice_servers=...): None, or a list of RTCIceServer objects, "stun:/turn:" URLs or
    dicts like the browser's ({"urls": ..., "username": ..., "credential": ...})."""
    if servers is None:
        return []
    if not isinstance(servers, (list, tuple)):
        raise invalid(
            f"ice_servers must be a list (e.g. ['stun:stun.example.org:3478']), not {_type_name(servers)}",
            argument="ice_servers",
        )
    for server in servers:
        if isinstance(server, str):
            _check_ice_url(server)
        elif isinstance(server, Mapping):
            _check_ice_dict(server)
        elif not isinstance(server, RTCIceServer):
            # its type, not its repr: an entry may hold a TURN credential
            raise invalid(
                f"Bad ICE server entry: a {_type_name(server)}, not a URL, a dict or an RTCIceServer",
                argument="ice_servers",
            )
    return list(servers)


def _check_ice_dict(server: Mapping[object, object]) -> None:
    urls = server.get("urls")
    listed = [urls] if isinstance(urls, str) else list(urls) if isinstance(urls, (list, tuple)) else []
    if not listed:
        raise invalid("An ICE server dict needs 'urls': a URL or a list of URLs", argument="ice_servers")
    for url in listed:
        _check_ice_url(url)
    for key in ("username", "credential"):
        if server.get(key) is not None and not isinstance(server[key], str):
            raise invalid(f"ICE server {key} must be a string", argument="ice_servers")


def _check_ice_url(url: object) -> None:
    if not (isinstance(url, str) and url.lower().startswith(_ICE_SCHEMES)):
        raise invalid(
            f"ICE server URLs start with stun:, stuns:, turn: or turns:, got {url!r:.60}",
            argument="ice_servers",
        )
