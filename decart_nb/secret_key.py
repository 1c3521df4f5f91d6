"""The API key as decart_nb holds it: a SecretKey, which prints as *** (repr, str, vars(), a
verbose traceback's frame variables) and is revealed only at the one call that hands it to
Decart's SDK; and `redact`, which takes the key out of any text (an SDK error quotes it)."""

from __future__ import annotations

import re
import urllib.parse
from typing import NoReturn

__all__ = ["SecretKey", "hidden", "redact"]

# The SDK puts the key in the control channel's URL; aiohttp errors quote that URL.
_KEY_IN_URL = re.compile(r"(api_key=)[^&\s'\"]+", re.IGNORECASE)


class SecretKey:
    """The API key: usable by the engine, shown as *** everywhere else (repr, str, vars())."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretKey('***')"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:  # never pickled into a saved notebook or a comm message
        raise TypeError("a secret (an API key or token) cannot be pickled")


def redact(text: str, key: SecretKey | None = None) -> str:
    """`text` with the API key (plain, URL-quoted, or as any URL's api_key=) replaced by ***."""
    if key is not None and key.reveal():
        for form in {key.reveal(), urllib.parse.quote(key.reveal(), safe="")}:
            text = text.replace(form, "***")
    return _KEY_IN_URL.sub(r"\1***", text)


def hidden(value: str | SecretKey | None) -> SecretKey | None:
    """A key argument as a SecretKey at once, so that the frame that took it holds no raw key
    (its caller then `del`s the argument). Anything else comes back as it is, for the caller's
    own type check."""
    return SecretKey(value) if isinstance(value, str) else value
