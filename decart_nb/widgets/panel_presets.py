"""Prompts for the prompt slider: the session's own list, else the local model's style names."""

from __future__ import annotations

from typing import Any

from ..engines.styles import STYLES

__all__ = ["preset_prompts"]


def preset_prompts(session: Any) -> list[str]:
    """The prompts the slider scrubs through (empty: no slider)."""
    if session.prompts:
        return list(session.prompts)
    if session.engine.name != "local":
        return []
    return [style.name for style in STYLES]
