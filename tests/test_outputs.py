"""Snapshots and recordings saved next to the notebook: out folder, names, labels, metadata."""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from decart_nb import DecartNBError, ErrorCode, Session
from decart_nb.outputs import Label, read_label, reserve, save_png
from decart_nb.widgets.panel.previews import MAX_PREVIEWS
from decart_nb.widgets.panel.upload import read_upload
from tests.helpers import png_bytes, wait_until

NAME = re.compile(r"^\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_[^\W_]+(-[^\W_]+)*(_\d\d)?\.(png|mp4)$")


def label(prompt: str | None = "anime", image: str | None = None, at: str = "2026-12-06T21:35:02") -> Label:
    return Label("snapshot", at, prompt, image, "lucy-latest")


# -- names and labels ---------------------------------------------------------------------------
def test_a_label_reads_as_kind_time_prompt_image_and_model() -> None:
    assert label().text == "Snapshot 21:35:02 · anime · no image · lucy-latest"
    assert label(None, "cat.png").text == "Snapshot 21:35:02 · no prompt · cat.png · lucy-latest"
    long = label("a very long prompt " * 10).text
    assert "…" in long and len(long) < 100


def test_file_names_start_with_the_time_then_a_short_slug_of_the_prompt() -> None:
    assert label("Anime, by night!").file_name(".png") == "2026-12-06_21-35-02_anime-by-night.png"
    assert label(None).file_name(".mp4") == "2026-12-06_21-35-02_no-prompt.mp4"
    assert label("../../etc/passwd").file_name(".png") == "2026-12-06_21-35-02_etc-passwd.png"
    assert label("水彩画 watercolor").file_name(".png") == "2026-12-06_21-35-02_水彩画-watercolor.png"
    cut = label("cinematic " * 20).file_name(".png")
    assert cut.endswith("_cinematic-cinematic-cinematic-cinematic.png"), cut  # whole words, <= 40
    times = ["2026-12-06T09:05:00", "2026-12-06T21:35:02", "2027-01-01T00:00:00"]
    names = [
        label(p, at=t).file_name(".png") for t, p in zip(times, ["zebra", "anime", "aardvark"], strict=True)
    ]
    assert sorted(names) == names  # by name is by time


def test_a_taken_name_is_never_overwritten_nor_followed(tmp_path: Path) -> None:
    first = reserve(tmp_path, label(), ".png")
    first.write_bytes(b"keep me")
    elsewhere = tmp_path / "elsewhere.png"
    (tmp_path / label().file_name(".png", 2)).symlink_to(elsewhere)  # a link where -2 would go
    third = reserve(tmp_path, label(), ".png")
    assert third.name == "2026-12-06_21-35-02_anime_03.png"
    assert sorted([third.name, first.name]) == [first.name, third.name]
    assert first.read_bytes() == b"keep me" and not elsewhere.exists()


def test_a_png_keeps_its_label_in_text_chunks(tmp_path: Path) -> None:
    saved = save_png(Image.new("RGB", (8, 6), (10, 200, 30)), label("noir", "cat.png"), tmp_path / "new")
    with Image.open(saved) as im:
        assert im.size == (8, 6)
        assert im.info["Title"] == "Snapshot 21:35:02 · noir · cat.png · lucy-latest"
        assert im.info["Software"] == "decart_nb" and im.info["Description"] == "noir"
    assert read_label(saved) == label("noir", "cat.png")


def test_an_out_dir_that_cannot_be_written_is_an_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    with pytest.raises(DecartNBError) as info:
        reserve(blocker / "out", label(), ".png")
    assert info.value.code == ErrorCode.INVALID_INPUT and "Cannot save into" in info.value.message


# -- the session --------------------------------------------------------------------------------
@pytest.fixture
def live(tmp_path: Path) -> Iterator[Session]:
    s = Session(source="pattern", prompt="film noir", out_dir=tmp_path / "out")
    s.connect()
    assert wait_until(lambda: s.state == "generating", timeout=15)
    yield s
    s.disconnect()


def test_out_dir_defaults_to_out_in_the_working_directory_and_can_be_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    s = Session(source="pattern")
    assert s.out_dir == tmp_path / "out"
    s.out_dir = "clips"
    assert s.out_dir == tmp_path / "clips"  # absolute from now on: a later chdir moves nothing
    with pytest.raises(DecartNBError, match="local folder path"):
        s.out_dir = 5  # type: ignore[assignment]


def test_save_snapshot_writes_a_labelled_png_next_to_the_notebook(live: Session, tmp_path: Path) -> None:
    ref = tmp_path / "cat.png"
    ref.write_bytes(png_bytes((200, 30, 30)))
    live.set_image(ref)
    first, second = live.save_snapshot(), live.save_snapshot()
    assert first.parent == second.parent == tmp_path / "out" and first != second
    assert NAME.match(first.name) and "_film-noir" in first.name, first.name
    with Image.open(first) as im:
        assert im.size == (1280, 720)
    saved = read_label(first)
    assert saved is not None and (saved.kind, saved.prompt, saved.image) == (
        "snapshot",
        "film noir",
        "cat.png",
    )
    assert saved.model == live.model.name
    assert isinstance(live.snapshot(), Image.Image)  # snapshot() itself still only returns the image


def test_record_without_a_path_goes_to_out_dir_and_with_one_where_it_says(
    live: Session, tmp_path: Path
) -> None:
    live.set_prompt("pencil sketch")
    clip = live.record(seconds=1)
    assert clip.parent == tmp_path / "out" and NAME.match(clip.name) and "_pencil-sketch" in clip.name
    named = live.record(tmp_path / "mine.mp4", 1)  # the old call, unchanged
    assert named == tmp_path / "mine.mp4"
    for path in (clip, named):
        with av.open(str(path)) as container:
            assert container.streams.video[0].frames > 0
            assert (
                container.metadata["title"].startswith("Clip ")
                and "pencil sketch" in container.metadata["title"]
            )
        got = read_label(path)
        assert got is not None and got.kind == "clip" and got.prompt == "pencil sketch" and got.image is None


def test_a_failed_recording_leaves_no_file_in_out_dir(live: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_: object) -> Path:
        raise DecartNBError(ErrorCode.FRAME_TIMEOUT, "No output frame arrived while recording")

    monkeypatch.setattr("decart_nb.session_outputs.record_clip", broken)
    with pytest.raises(DecartNBError, match="No output frame"):
        live.record(seconds=1)
    assert not any(live.out_dir.glob("*.mp4"))


def test_an_uploads_file_name_names_the_image_in_labels(live: Session) -> None:
    _, pixels = read_upload([{"name": "holiday.jpg", "content": png_bytes((0, 0, 250))}])
    live.set(prompt="watercolor", image=pixels)
    saved = read_label(live.save_snapshot())
    assert saved is not None and saved.image == "holiday.jpg"
    live.set_prompt("noir")  # the image stays, so does its name
    saved = read_label(live.save_snapshot())
    assert saved is not None and saved.image == "holiday.jpg" and saved.prompt == "noir"
    live.set(prompt="noir")  # a prompt-only set() drops the image
    saved = read_label(live.save_snapshot())
    assert saved is not None and saved.image is None
    live.set_image(np.zeros((8, 8, 3), np.uint8))
    saved = read_label(live.save_snapshot())
    assert saved is not None and saved.image == "image"  # an array has no name


# -- the panel ------------------------------------------------------------------------------------
def test_the_panels_snapshot_and_clip_are_saved_labelled_and_downloadable(live: Session) -> None:
    panel = live.panel
    try:
        previews = panel.actions.previews
        panel.actions.snapshot_button.click()
        assert wait_until(lambda: previews.newest("snapshot") is not None, timeout=15)
        panel.actions.record_seconds.value = 1
        panel.actions.record_button.click()
        assert wait_until(lambda: previews.newest("clip") is not None, timeout=30)
        shot, clip = previews.newest("snapshot"), previews.newest("clip")
        assert shot is not None and clip is not None
        assert shot.path.parent == clip.path.parent == live.out_dir  # where s.record() writes too
        for preview, kind, media in ((shot, "Snapshot", "image/png"), (clip, "Clip", "video/mp4")):
            caption = html.unescape(preview.caption.value)
            assert f"<b>{kind}</b> " in caption and "· film noir · no image ·" in caption
            assert preview.path.name in caption
            link = re.search(
                r'<a class="dnb-download" download="([^"]+)" href="data:([^;]+);base64,([^"]+)"', caption
            )
            assert link is not None and link.group(1) == preview.path.name and link.group(2) == media
            assert base64.b64decode(link.group(3)) == preview.path.read_bytes()
        assert Image.open(io.BytesIO(shot.media.value)).size == (1280, 720)  # type: ignore[union-attr]
        assert clip.media is not None and clip.media.value[4:8] == b"ftyp"
        assert [p.label.kind for p in previews.items] == ["clip", "snapshot"]  # newest first
    finally:
        panel.close()


def test_the_panel_keeps_only_the_newest_previews(live: Session) -> None:
    panel = live.panel
    try:
        previews = panel.actions.previews
        first: Any = None
        for n in range(MAX_PREVIEWS + 2):
            before = {p.path for p in previews.items}
            panel.actions.snapshot_button.click()  # one at a time: each shown before the next
            assert wait_until(
                lambda b=before: bool(previews.items) and previews.items[0].path not in b, timeout=15
            )
            assert len(previews.items) == min(n + 1, MAX_PREVIEWS)
            first = first if n else previews.items[0]
        files = sorted(live.out_dir.glob("*.png"))  # by name: by time, a name's _02 after it
        assert wait_until(lambda: [p.path for p in previews.items] == files[::-1][:MAX_PREVIEWS], timeout=10)
        assert first.caption.comm is None  # the oldest preview was closed: its bytes freed
        assert len(previews.grid.children) == MAX_PREVIEWS
        assert "out" in html.unescape(previews.note.value)
    finally:
        panel.close()


def test_files_saved_from_cells_show_in_the_panel_too(live: Session, tmp_path: Path) -> None:
    panel = live.panel
    try:
        saved = live.save_snapshot()
        clip = live.record(seconds=1)
        named = live.record(live.out_dir / "named.mp4", 1)
        live.record(tmp_path / "elsewhere.mp4", 1)  # kept where the cell said: not the panel's
        assert [p.path for p in panel.actions.previews.items] == [named, clip, saved]
        assert len(panel.actions.previews.items) == 3
        panel.close()
        live.save_snapshot()  # a closed panel stops listening
        assert len(panel.actions.previews.items) == 3
    finally:
        panel.close()


def test_a_file_over_the_link_cap_is_named_not_sent_to_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from decart_nb.widgets.panel import previews

    path = save_png(Image.new("RGB", (64, 48)), label("noir"), tmp_path)
    monkeypatch.setattr(previews, "LINK_MAX_BYTES", path.stat().st_size - 1)
    shown = previews.Preview(path, label("noir"))
    assert shown.media is None and "data:" not in shown.caption.value
    assert "too large to preview or download here" in shown.caption.value and path.name in shown.caption.value
    shown.close()
