"""Prompts for the prompt slider: the session's own list, else the local model's style names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...engines.local.styles import STYLES

if TYPE_CHECKING:
    from ...session import Session

__all__ = ["preset_prompts"]


def preset_prompts(session: Session) -> list[str]:
    """The prompts the slider scrubs through (empty: no slider)."""
    if session.prompts:
        return list(session.prompts)
    if session.engine.name != "local":
        return []
    return [style.name for style in STYLES]
