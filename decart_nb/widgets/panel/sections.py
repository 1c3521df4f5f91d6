"""Collapsible sections of the panel: a header that opens and closes its body.

The header is a ToggleButton, so a click opens the section in the page at once, without a kernel
round trip (a busy kernel would answer late): the page marks the pressed button `mod-active`, and
panel.css hides the body of a section whose button is not. The value still reaches the kernel, so
Python reads and sets `expanded` (the panel opens the error list when an error arrives).
"""

from __future__ import annotations

import ipywidgets as w

__all__ = ["Section"]


class Section(w.VBox):  # type: ignore[misc]  # ipywidgets has no types: VBox is Any
    """`Section("Camera", box, name="camera")`: closed unless `open_`; `expanded` reads and sets it."""

    def __init__(self, title: str, *children: w.Widget, name: str, open_: bool = False) -> None:
        self.toggle = w.ToggleButton(value=open_, description=title, tooltip=f"Show or hide: {title}")
        self.toggle.add_class("dnb-fold-toggle")
        self.body = w.VBox(list(children))
        self.body.add_class("dnb-fold-body")
        super().__init__([self.toggle, self.body])
        self.add_class("dnb-fold")
        self.add_class(f"dnb-fold-{name}")

    @property
    def expanded(self) -> bool:  # (Widget.open() is ipywidgets' own: it opens the comm)
        return bool(self.toggle.value)

    @expanded.setter
    def expanded(self, value: bool) -> None:
        self.toggle.value = value

    def set_title(self, title: str) -> None:
        self.toggle.description = title
