"""The embedded local model: the engine (engine.py), prompt words to looks (styles.py), per-look
tables (tables.py), the per-frame renderer (render.py, lut.py) and colour transfer (colour.py)."""

from __future__ import annotations

from .engine import LocalEngine
from .styles import compile_look, enhance_prompt, match_style

__all__ = ["LocalEngine", "compile_look", "enhance_prompt", "match_style"]
