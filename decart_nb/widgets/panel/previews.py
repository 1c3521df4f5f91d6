"""The panel's previews of saved snapshots and clips: each labelled, with its path and a download link.

The page cannot read kernel files by path (the server's root, a remote kernel, Colab), so the
download link carries the file itself as a data: URL, up to LINK_MAX_BYTES (a 60 s clip at 720p
can be tens of MB; larger files are named, not linked or previewed, and stay in the out folder).
Only the newest MAX_PREVIEWS stay in the panel; older previews are closed (their widget models and
bytes freed in the kernel and the page), the files stay.
"""

from __future__ import annotations

import base64
import html
import os
import threading
from pathlib import Path

import ipywidgets as w

from ...outputs import Kind, Label, read_label

__all__ = ["LINK_MAX_BYTES", "MAX_PREVIEWS", "Preview", "Previews"]

MAX_PREVIEWS = 4
LINK_MAX_BYTES = 8 * 1024 * 1024  # 11 MB as base64, in one widget message
CARD_WIDTH = "300px"  # side by side where the panel is wide, one under the other where it is not
_COMPACT = 'style="line-height: 1.4; margin-bottom: 2px"'  # widget HTML's line is an input's height
_UNDERLINED = 'style="text-decoration: underline"'  # a link, though the muted line greys it
_MIME = {".png": "image/png", ".mp4": "video/mp4"}


class Preview(w.VBox):  # type: ignore[misc]  # ipywidgets has no types: VBox is Any
    """One saved output: its label, where it is, a download link, and the picture or the clip."""

    def __init__(self, path: Path, label: Label) -> None:
        self.path, self.label = path, label
        size = path.stat().st_size
        data = path.read_bytes() if size <= LINK_MAX_BYTES else None
        self.caption = w.HTML(caption_html(path, label, data))
        self.media: w.Image | w.Video | None = None
        if data is not None and label.kind == "snapshot":
            self.media = w.Image(value=data, format="png", layout=w.Layout(width="100%"))
        elif data is not None:
            self.media = w.Video(value=data, format="mp4", autoplay=False, loop=True, controls=True)
            self.media.layout = w.Layout(width="100%")
        children = [self.caption] + ([self.media] if self.media is not None else [])
        super().__init__(children, layout=w.Layout(width=CARD_WIDTH, margin="0 12px 12px 0"))
        self.add_class("dnb-preview")
        self.add_class(f"dnb-preview-{label.kind}")

    def close(self) -> None:
        for child in (self.caption, self.media):
            if child is not None:
                child.close()
        super().close()


class Previews:
    """`box`: a note on where files go, then the newest previews first (at most MAX_PREVIEWS)."""

    def __init__(self, out_dir: Path) -> None:
        self._lock = threading.Lock()
        self.note = w.HTML(where_html(out_dir))
        self.grid = w.HBox(layout=w.Layout(flex_flow="row wrap", align_items="flex-start"))
        self.box = w.VBox([self.note, self.grid])
        self.items: list[Preview] = []

    def add(self, path: Path, out_dir: Path) -> Preview:
        """Show the file just saved (its label read back from the file's metadata)."""
        kind: Kind = "clip" if path.suffix.lower() == ".mp4" else "snapshot"
        label = read_label(path) or Label(kind, "", None, None, "")  # a file without our label
        preview = Preview(path, label)
        with self._lock:
            self.items.insert(0, preview)
            dropped, self.items = self.items[MAX_PREVIEWS:], self.items[:MAX_PREVIEWS]
            self.note.value = where_html(out_dir)
            self.grid.children = tuple(self.items)
        for old in dropped:
            old.close()
        return preview

    def newest(self, kind: str) -> Preview | None:
        with self._lock:
            return next((p for p in self.items if p.label.kind == kind), None)

    def close(self) -> None:
        with self._lock:
            items, self.items = self.items, []
        for preview in items:
            preview.close()


def caption_html(path: Path, label: Label, data: bytes | None) -> str:
    kind, _, rest = label.text.partition(" ")
    title = f"<b>{html.escape(kind)}</b> {html.escape(rest)}" if label.at else html.escape(path.name)
    shown = html.escape(shown_path(path))
    where = f'<code title="{html.escape(str(path))}" style="word-break: break-all">{shown}</code>'
    if data is None:
        size = path.stat().st_size / 1e6
        link = f"{size:.0f} MB: too large to preview or download here; open it from the file browser"
    else:
        url = f"data:{_MIME.get(path.suffix.lower(), 'application/octet-stream')};base64,"
        url += base64.b64encode(data).decode("ascii")
        name = html.escape(path.name, quote=True)
        link = f'<a class="dnb-download" download="{name}" href="{url}" {_UNDERLINED}>Download</a>'
    return (
        f'<div class="dnb-preview-label" {_COMPACT}>{title}</div>'
        f'<div class="dnb-muted" {_COMPACT}>{where} · {link}</div>'
    )


def where_html(out_dir: Path) -> str:
    folder = html.escape(shown_path(out_dir))
    return (
        f'<div class="dnb-muted">Snapshots and clips are saved in <code>{folder}</code> '
        f"(<code>s.out_dir</code> changes it); the newest {MAX_PREVIEWS} are shown here.</div>"
    )


def shown_path(path: Path) -> str:
    """Relative to the kernel's working directory (the notebook's folder) when inside it."""
    try:
        return str(path.relative_to(Path(os.getcwd())))
    except ValueError:
        return str(path)
