"""The widgets' style sheets, read from the package's static folder (shipped as package data)."""

from __future__ import annotations

from importlib import resources

__all__ = ["style_sheets"]


def style_sheets(*names: str) -> str:
    """The named sheets' text, in order (later rules win a tie)."""
    static = resources.files("decart_nb.widgets").joinpath("static")
    return "\n".join(static.joinpath(name).read_text(encoding="utf-8") for name in names)
