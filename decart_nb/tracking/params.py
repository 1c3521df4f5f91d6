"""What a tracker may see: params and rows without secrets, and a row split into params and metrics.

The API key never leaves the kernel, so nothing reaches a tracker (MLflow, W&B, a user's function)
under a name that sounds secret (api_key, key, token, secret, password, ...) or with a value that
looks like a key (a SecretKey, the value of DECART_API_KEY, an `ek_`/`dct_` key, a JWT, a long
mixed-case token). Such entries are left out, not masked: a tracker keeps what it is given forever.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping

from ..secret_key import SecretKey, redact

__all__ = [
    "PARAM_COLUMNS",
    "ParamValue",
    "item_label",
    "looks_like_key",
    "redact_text",
    "safe_params",
    "safe_row",
    "secret_name",
    "split_row",
]

ParamValue = str | int | float | bool

# Whole words (split at _, -, ., spaces and camelCase humps) that make a name secret.
_SECRET_WORDS = frozenset(
    {"key", "apikey", "token", "secret", "password", "passwd", "pwd", "credential", "credentials", "auth"}
)
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
# Key-like values: Decart's `ek_` client tokens and `dct_` keys, a JWT, or one long token of letters
# and digits in both cases (how API keys are made); a hash (one case) or a path (has / or spaces)
# is not one.
_PREFIXED = re.compile(r"\b(?:ek|dct|sk)_[A-Za-z0-9_\-]{12,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.")
_LONG_TOKEN = re.compile(r"^[A-Za-z0-9_\-]{32,}$")
# The row's identity column (a SHA-256 prefix of the item's content) is no secret, whatever its name.
_ROW_IDENTITY = "key"
# Integer columns that place an item (axes), logged as params; other numbers are metrics.
PARAM_COLUMNS = frozenset({"index", "seed", "repeat", "arm", "attempts", "state_version"})
# Columns naming the item's files: logged as files, not as params.
_FILE_COLUMNS = frozenset({"snapshot", "clip"})


def secret_name(name: str) -> bool:
    """True for a name like api_key, DECART_API_KEY, accessToken, client_secret, password."""
    words = {w.lower() for w in _WORD.findall(name)}
    return bool(words & _SECRET_WORDS) or "apikey" in name.lower().replace("_", "").replace("-", "")


def looks_like_key(value: object) -> bool:
    """True for a SecretKey, and for text holding DECART_API_KEY's value or shaped like a key."""
    if isinstance(value, SecretKey):
        return True
    if not isinstance(value, str):
        return False
    env_key = os.environ.get("DECART_API_KEY", "").strip()
    if len(env_key) >= 8 and env_key in value:
        return True
    if _PREFIXED.search(value) or _JWT.search(value):
        return True
    return bool(
        _LONG_TOKEN.match(value)
        and re.search(r"[a-z]", value)
        and re.search(r"[A-Z]", value)
        and re.search(r"[0-9]", value)
    )


def redact_text(text: str) -> str:
    """`text` (an exception's message) with DECART_API_KEY's value and key-shaped words as ***."""
    env_key = os.environ.get("DECART_API_KEY", "").strip()
    text = redact(text, SecretKey(env_key) if len(env_key) >= 8 else None)
    return _JWT.sub("***.", _PREFIXED.sub("***", text))


def safe_params(params: Mapping[str, object], prefix: str = "") -> dict[str, ParamValue]:
    """`params` flattened (nested mappings as `outer.inner`), without None, secret names or
    key-like values; other values (lists, objects) as text."""
    out: dict[str, ParamValue] = {}
    for raw_name, value in params.items():
        name = f"{prefix}{raw_name}"
        if secret_name(str(raw_name)) or looks_like_key(value) or value is None:
            continue
        if isinstance(value, Mapping):
            out |= safe_params(value, prefix=f"{name}.")
        elif isinstance(value, (str, int, float, bool)):
            out[name] = value
        else:
            text = str(value)
            if not looks_like_key(text):
                out[name] = text
    return out


def safe_row(row: Mapping[str, object]) -> dict[str, object]:
    """A results row without secret-named columns (but its `key`, the item's identity hash) and
    without key-like values (set to None, so a callable tracker still sees every column it expects)."""
    out: dict[str, object] = {}
    for name, value in row.items():
        if secret_name(name) and name != _ROW_IDENTITY:
            continue
        out[name] = None if looks_like_key(value) or isinstance(value, SecretKey) else value
    return out


def split_row(row: Mapping[str, object]) -> tuple[dict[str, ParamValue], dict[str, float]]:
    """(params, metrics) of a safe row: its text and bool columns and its axes are params, its
    other numbers metrics (finite ones). None, the file columns and the identity are left out."""
    params: dict[str, ParamValue] = {}
    metrics: dict[str, float] = {}
    for name, value in row.items():
        if value is None or name in _FILE_COLUMNS or name == _ROW_IDENTITY:
            continue
        if isinstance(value, bool) or name in PARAM_COLUMNS or isinstance(value, str):
            params[name] = value if isinstance(value, (str, bool, int, float)) else str(value)
        elif isinstance(value, (int, float)):
            if math.isfinite(value):
                metrics[name] = float(value)
        else:
            params[name] = str(value)
    return params, metrics


def item_label(row: Mapping[str, object]) -> str:
    """A short name for an item's run: its index, arm, prompt and reference image."""
    parts = [f"{row.get('index', '?')}"]
    if row.get("arm") not in (None, ""):
        parts.append(f"[{row['arm']}]")
    parts.append(str(row.get("prompt") or "(no prompt)"))
    if row.get("image") not in (None, "", "none"):
        parts.append(f"+ {row['image']}")
    return " ".join(parts)[:200]
