"""Prompts for the prompt slider: the session's own list, else the local model's vocabulary."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["FALLBACK_PRESETS", "preset_prompts"]

logger = logging.getLogger("decart_nb")

# Used when the local engine exposes no vocabulary of its own.
FALLBACK_PRESETS = (
    "film noir",
    "pencil sketch",
    "anime",
    "watercolor painting",
    "neon cyberpunk",
    "oil painting",
)
# Where the local model may publish its style vocabulary, in order of preference.
_VOCABULARY_PLACES = (
    ("decart_nb.engines.local", ("STYLES", "VOCABULARY", "PRESETS", "style_names")),
    ("decart_nb.engines.styles", ("STYLES", "VOCABULARY", "PRESETS", "style_names")),
)


def preset_prompts(session: Any) -> list[str]:
    """The prompts the slider scrubs through (empty: no slider)."""
    if session.prompts:
        return list(session.prompts)
    if getattr(session.engine, "name", None) != "local":
        return []
    return _local_vocabulary() or list(FALLBACK_PRESETS)


def _local_vocabulary() -> list[str]:
    for module_name, attributes in _VOCABULARY_PLACES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for attribute in attributes:
            found = getattr(module, attribute, None)
            names = _names(found() if callable(found) else found)
            if names:
                return names
    return []


def _names(found: Any) -> list[str]:
    if isinstance(found, Mapping):
        found = list(found.keys())
    if not isinstance(found, Iterable) or isinstance(found, (str, bytes)):
        return []
    names = []
    for item in found:
        name = item if isinstance(item, str) else getattr(item, "prompt", None) or getattr(item, "name", None)
        if isinstance(name, str) and name.strip():
            names.append(name)
    return names
