"""Attacks on a sweep's run folder (issue 19, item 5): a folder that was edited, damaged or shared.

- Nothing an earlier run wrote is replaced: resume=False sets the record and its views aside under
  a new suffix each time, and an item file whose name is taken gets a new name.
- A resume reads only rows of the right shape whose files are in the folder; anything else stops
  with INVALID_INPUT naming the line (never a raw KeyError, never a file outside out_dir read).
- Writing never follows a link or a name out of the folder.
- One run at a time: a second run (a thread, another process) stops at once; the lock is released
  on every exit and a crashed run's lock does not block the next one.

Most tests stand a fake lane in for sessions (a coloured PNG per item, at once); the lock tests
across processes run real sweeps.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest
from PIL import Image

from decart_nb import DecartNBError, ErrorCode
from decart_nb.experiments import COLUMNS, sweep
from decart_nb.sweeps import lanes
from decart_nb.sweeps.rows import new_row
from decart_nb.sweeps.runfolder import LOCK_FILE, RunFolder
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent.parent


def _png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), colour).save(buf, format="PNG")
    return buf.getvalue()


class ColourLane:
    """A session stand-in: each item's snapshot is a PNG of ColourLane.colour; `extra` files (and a
    row override) let a test play a hostile worker; `gate` holds an item until it is set."""

    colour: ClassVar[tuple[int, int, int]] = (200, 0, 0)
    extra: ClassVar[dict[str, bytes]] = {}
    row_override: ClassVar[dict[str, Any]] = {}
    gate: ClassVar[threading.Event | None] = None
    started: ClassVar[threading.Event] = threading.Event()
    interrupt: ClassVar[bool] = False

    def __init__(self, spec: lanes.RunSpec, source: Any, source_id: str, session: Any = None) -> None:
        self.run_id, self.source_id, self.busy, self.last_used = spec.run_id, source_id, False, 0.0
        self.healthy = True

    def open(self) -> ColourLane:
        return self

    def close(self) -> None:
        self.healthy = False

    def run(self, item: Any, spec: lanes.RunSpec) -> lanes.Outcome:
        ColourLane.started.set()
        if ColourLane.gate is not None:
            assert ColourLane.gate.wait(timeout=30)
        if ColourLane.interrupt:
            raise KeyboardInterrupt
        name = f"{item.stem}.png"
        row = new_row(item, spec.enhance) | {"snapshot": name, "fps_out": 30.0} | ColourLane.row_override
        return {"row": row, "files": {name: _png(ColourLane.colour), **ColourLane.extra}}


@pytest.fixture(autouse=True)
def colour_lanes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lanes, "Lane", ColourLane)
    monkeypatch.setattr(ColourLane, "colour", (200, 0, 0))
    monkeypatch.setattr(ColourLane, "extra", {})
    monkeypatch.setattr(ColourLane, "row_override", {})
    monkeypatch.setattr(ColourLane, "gate", None)
    monkeypatch.setattr(ColourLane, "started", threading.Event())
    monkeypatch.setattr(ColourLane, "interrupt", False)


def _sweep(out: Path, prompts: tuple[str, ...] = ("a", "b"), **kwargs: Any) -> Any:
    return sweep(list(prompts), source="pattern", engine="local", seconds=0, out_dir=out, **kwargs)


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _colour_of(path: Path) -> tuple[int, ...]:
    with Image.open(path) as im:
        return tuple(im.convert("RGB").getpixel((10, 10)))  # inside the sheet's cell outline


# -- 1. nothing an earlier run wrote is replaced -----------------------------------------------
def test_runs_that_start_over_keep_every_earlier_record_and_its_pictures(tmp_path: Path) -> None:
    colours = [(200, 0, 0), (0, 200, 0), (0, 0, 200)]
    for colour in colours:  # the same items (same keys, same file names) three times over
        ColourLane.colour = colour
        _sweep(tmp_path, resume=False)
    records = ["results.jsonl.previous", "results.jsonl.previous.1", "results.jsonl"]
    for record, colour in zip(records, colours, strict=True):
        rows = _rows(tmp_path / record)
        assert len(rows) == 2
        assert all(_colour_of(tmp_path / r["snapshot"]) == colour for r in rows), record
    for view in ("results.csv", "results.md", "contact_sheet.png"):  # the views, set aside alike
        assert (tmp_path / f"{view}.previous").is_file() and (tmp_path / f"{view}.previous.1").is_file()
    assert _colour_of(tmp_path / "contact_sheet.png.previous") == colours[0]


def test_resume_false_says_where_the_earlier_rows_went(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _sweep(tmp_path)
    _sweep(tmp_path, resume=False)
    _sweep(tmp_path, resume=False)
    said = capsys.readouterr().out
    assert "2 earlier rows moved to results.jsonl.previous (" in said
    assert "2 earlier rows moved to results.jsonl.previous.1 (" in said


# -- 2. rows are checked on resume ---------------------------------------------------------------
def _damage(out: Path, line: int, text: str | bytes) -> None:
    lines = out.joinpath("results.jsonl").read_bytes().splitlines(keepends=True)
    lines[line - 1] = text if isinstance(text, bytes) else text.encode()
    out.joinpath("results.jsonl").write_bytes(b"".join(lines))


def _first_key(out: Path) -> str:
    return str(_rows(out / "results.jsonl")[0]["key"])


@pytest.mark.parametrize(
    ("replace", "said"),
    [
        (lambda row: "[1, 2]\n", "a row is a JSON object, not a list"),
        (lambda row: "42\n", "a row is a JSON object, not a number"),
        (lambda row: "null\n", "a row is a JSON object, not null"),
        (lambda row: b"\xff\xfe garbage\n", "it is not a JSON row"),
        (lambda row: '{"key": "unterminated\n', "it is not a JSON row"),
        (lambda row: json.dumps({"key": row["key"]}) + "\n", "the column 'index' is missing"),
        (
            lambda row: json.dumps(row | {"error_code": 3}) + "\n",
            "'error_code' must be text or null, not a number",
        ),
        (
            lambda row: json.dumps(row | {"fps_out": "fast"}) + "\n",
            "'fps_out' must be a whole number or a number",
        ),
        (
            lambda row: json.dumps(row | {"frames_out": True}) + "\n",
            "'frames_out' must be a whole number or null",
        ),
        (lambda row: json.dumps(row | {"key": ["x"]}) + "\n", "'key' must be text, not a list"),
        (lambda row: json.dumps(row | {"prompt": {"a": 1}}) + "\n", "'prompt' must be text, not an object"),
    ],
    ids=[
        "list",
        "number",
        "null",
        "not-utf8",
        "cut-mid-file",
        "missing",
        "code",
        "fps",
        "bool",
        "key",
        "prompt",
    ],
)
def test_a_row_of_the_wrong_shape_stops_the_resume_naming_its_line(
    tmp_path: Path, replace: Any, said: str
) -> None:
    _sweep(tmp_path, ("a", "b", "c"))
    row = _rows(tmp_path / "results.jsonl")[1]
    _damage(tmp_path, 2, replace(row))
    before = (tmp_path / "results.jsonl").read_bytes()
    with pytest.raises(DecartNBError) as caught:
        _sweep(tmp_path, ("a", "b", "c"))
    assert caught.value.code == ErrorCode.INVALID_INPUT
    assert f"results.jsonl, line 2: {said}" in caught.value.message
    assert caught.value.data["line"] == 2
    assert (tmp_path / "results.jsonl").read_bytes() == before  # nothing dropped or rewritten


def test_a_bad_last_line_that_is_whole_is_not_taken_for_a_crash(tmp_path: Path) -> None:
    """Only an append cut short (no newline, the start of a row) is dropped: a whole last line of
    the wrong shape is refused and left in place, not deleted as if torn."""
    _sweep(tmp_path, ("a", "b"))
    key = _first_key(tmp_path)
    with (tmp_path / "results.jsonl").open("a") as f:
        f.write(json.dumps({"key": key, "error_code": None}) + "\n")
    before = (tmp_path / "results.jsonl").read_bytes()
    with pytest.raises(DecartNBError, match=r"line 3: the column 'index' is missing"):
        _sweep(tmp_path, ("a", "b"))
    assert (tmp_path / "results.jsonl").read_bytes() == before


def test_text_after_the_last_row_that_is_no_cut_row_is_refused(tmp_path: Path) -> None:
    _sweep(tmp_path, ("a",))
    with (tmp_path / "results.jsonl").open("ab") as f:
        f.write(b"#!/bin/sh no newline")
    with pytest.raises(DecartNBError, match=r"line 2: it is not a JSON row") as caught:
        _sweep(tmp_path, ("a",))
    assert caught.value.code == ErrorCode.INVALID_INPUT


def test_a_row_cut_short_by_a_crash_is_dropped_with_a_warning_and_its_item_runs_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _sweep(tmp_path, ("a", "b"))
    whole = (tmp_path / "results.jsonl").read_bytes()
    last = whole.splitlines(keepends=True)[-1]
    for tail in (last[: len(last) // 2], b"\0" * 64):  # a write cut short; a power loss's zeros
        (tmp_path / "results.jsonl").write_bytes(whole[: -len(last)] + tail)
        with caplog.at_level(logging.WARNING, logger="decart_nb"):
            result = _sweep(tmp_path, ("a", "b"))
        assert "dropped line 2" in caplog.text and "cut short" in caplog.text
        assert result.skipped == 1 and len(_rows(tmp_path / "results.jsonl")) == 2
        caplog.clear()


def test_a_whole_last_row_missing_only_its_newline_is_kept(tmp_path: Path) -> None:
    _sweep(tmp_path, ("a", "b"))
    (tmp_path / "results.jsonl").write_bytes((tmp_path / "results.jsonl").read_bytes()[:-1])
    result = _sweep(tmp_path, ("a", "b", "c"))
    assert result.skipped == 2 and len(_rows(tmp_path / "results.jsonl")) == 3


# -- 3. paths stay inside out_dir ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("snapshot", "said"),
    [
        ("{secret}", "is not a file name in the run folder"),
        ("../secret.png", "is not a file name in the run folder"),
        ("sub/../../secret.png", "is not a file name in the run folder"),
        ("..", "is not a file name in the run folder"),
        ("link.png", "is a link out of the run folder"),
    ],
    ids=["absolute", "dotdot", "nested", "parent", "symlink"],
)
def test_a_row_pointing_outside_out_dir_is_refused_on_resume(
    tmp_path: Path, snapshot: str, said: str
) -> None:
    out, secret = tmp_path / "out", tmp_path / "secret.png"
    secret.write_bytes(_png((1, 2, 3)))  # a picture the run folder must never show
    (out / "link.png").parent.mkdir()
    (out / "link.png").symlink_to(secret)
    _sweep(out, ("a", "b"))
    row = _rows(out / "results.jsonl")[1]
    _damage(out, 2, json.dumps(row | {"snapshot": snapshot.format(secret=secret)}) + "\n")
    with pytest.raises(DecartNBError) as caught:
        _sweep(out, ("a", "b"))
    assert caught.value.code == ErrorCode.INVALID_INPUT
    assert "results.jsonl, line 2: its snapshot" in caught.value.message and said in caught.value.message


def test_a_clip_pointing_outside_is_refused_too(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _sweep(out, ("a",))
    row = _rows(out / "results.jsonl")[0]
    _damage(out, 1, json.dumps(row | {"clip": "/etc/passwd"}) + "\n")
    with pytest.raises(DecartNBError, match=r"line 1: its clip '/etc/passwd' is not a file name"):
        _sweep(out, ("a",))


@pytest.mark.parametrize(
    "name", ["../escaped.png", "{tmp}/escaped.png", "results.jsonl", ".sweep.lock.png", "sub/x.png", "x.sh"]
)
def test_a_worker_cannot_make_the_coordinator_write_outside_its_files(tmp_path: Path, name: str) -> None:
    """A (remote) worker sends files by name; only plain item files are written."""
    out = tmp_path / "out"
    ColourLane.extra = {name.format(tmp=tmp_path): b"#!/bin/sh\n"}
    with pytest.raises(DecartNBError, match="is not a file in the run folder") as caught:
        _sweep(out, ("a",))
    assert caught.value.code == ErrorCode.INVALID_INPUT
    assert not (tmp_path / "escaped.png").exists()
    assert not (out / "results.jsonl").exists()  # the row was not stored either


def test_a_worker_row_naming_a_file_it_did_not_send_is_refused(tmp_path: Path) -> None:
    out, secret = tmp_path / "out", tmp_path / "secret.png"
    secret.write_bytes(_png((1, 2, 3)))
    ColourLane.row_override = {"snapshot": "../secret.png"}
    with pytest.raises(DecartNBError, match="names a snapshot it did not send"):
        _sweep(out, ("a",))
    assert not (out / "results.jsonl").exists()


def test_links_planted_in_the_folder_are_never_written_through(tmp_path: Path) -> None:
    out, victims = tmp_path / "out", tmp_path / "victims"
    out.mkdir()
    victims.mkdir()
    items_stem = "00_a_none_"
    names = ["results.md", "contact_sheet.png", ".results.csv.part", ".results.md.part"]
    for name in names:
        (victims / name).write_text("precious")
        (out / name).symlink_to(victims / name)
    _sweep(out, ("a",))
    stem = next(p.name for p in out.glob(f"{items_stem}*.png"))
    (victims / "part").write_text("precious")
    (out / f".{stem}.part").symlink_to(victims / "part")  # the next snapshot's temporary name
    ColourLane.colour = (0, 0, 200)
    _sweep(out, ("a",), resume=False)
    assert all((victims / name).read_text() == "precious" for name in [*names, "part"])
    assert not (out / "results.md").is_symlink() and not (out / "contact_sheet.png").is_symlink()


def test_a_link_in_place_of_the_record_is_refused(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere.jsonl"
    out.mkdir()
    elsewhere.write_text("")
    (out / "results.jsonl").symlink_to(elsewhere)
    with pytest.raises(DecartNBError, match="a link is not followed") as caught:
        _sweep(out, ("a",))
    assert caught.value.code == ErrorCode.INVALID_INPUT
    assert elsewhere.read_text() == ""


# -- 4. one run at a time ------------------------------------------------------------------------
def test_a_second_run_in_another_thread_stops_at_once_naming_the_folder(tmp_path: Path) -> None:
    ColourLane.gate = threading.Event()
    first: list[Any] = []
    runner = threading.Thread(target=lambda: first.append(_sweep(tmp_path, ("a", "b"))))
    runner.start()
    try:
        assert ColourLane.started.wait(timeout=30)  # the first run is writing the folder
        with pytest.raises(DecartNBError) as caught:
            _sweep(tmp_path, ("a", "b"))
        assert caught.value.code == ErrorCode.FOLDER_BUSY
        assert f"Another sweep is using {tmp_path}" in caught.value.message
    finally:
        ColourLane.gate.set()
        runner.join(timeout=30)
    assert first and not first[0].failed and len(_rows(tmp_path / "results.jsonl")) == 2  # untouched


def test_the_lock_is_released_on_an_error_and_on_ctrl_c(tmp_path: Path) -> None:
    """The tracebacks are kept, as IPython keeps the last one: the run's frames stay alive, so
    only an explicit release frees the folder."""
    ColourLane.interrupt = True
    with pytest.raises(KeyboardInterrupt) as interrupted:
        _sweep(tmp_path, ("a",))
    ColourLane.interrupt = False
    (tmp_path / "results.jsonl").write_text("[]\n")
    with pytest.raises(DecartNBError, match="line 1") as refused:
        _sweep(tmp_path, ("a",))
    (tmp_path / "results.jsonl").unlink()
    assert not _sweep(tmp_path, ("a",)).failed  # neither exit left the folder locked
    assert interrupted.tb is not None and refused.tb is not None


HOLDER = """
import sys, time
from pathlib import Path
from decart_nb.experiments import sweep
from PIL import Image

def hold(snapshot: Image.Image, row: dict) -> dict:
    print("running", flush=True)
    release = Path(sys.argv[2])
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return {}

from tests.test_sweep_runs import invert
sweep(["p0"], engine=invert, seconds=0, frames=2, out_dir=sys.argv[1], metrics=hold)
print("done", flush=True)
"""


def test_a_second_run_in_another_process_stops_at_once(tmp_path: Path) -> None:
    """A real sweep in a child process holds the folder; this process's sweep is refused."""
    out, release = tmp_path / "out", tmp_path / "release"
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out), str(release)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "running"
        with pytest.raises(DecartNBError) as caught:
            _sweep(out, ("p0",))
        assert caught.value.code == ErrorCode.FOLDER_BUSY
        assert f"Another sweep is using {out}" in caught.value.message
    finally:
        release.touch()
        rest, _ = child.communicate(timeout=60)
    assert child.returncode == 0 and rest.strip() == "done"
    assert len(_rows(out / "results.jsonl")) == 1  # the refused run wrote nothing


KILLED_HOLDER = """
import sys, time
from pathlib import Path
from decart_nb.sweeps.runfolder import RunFolder
from decart_nb.experiments import COLUMNS
with RunFolder(Path(sys.argv[1]), COLUMNS).locked():
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_crashed_runs_lock_does_not_block_the_next_run(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_HOLDER, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        with pytest.raises(DecartNBError, match="Another sweep is using"):
            _sweep(tmp_path, ("a",))
    finally:
        child.kill()  # SIGKILL: no clean-up at all, as a kernel restart
        child.wait(timeout=30)
    assert (tmp_path / LOCK_FILE).exists()  # the lock file stays; its lock died with the process
    assert wait_until(lambda: _takes_lock(tmp_path), timeout=10)
    assert not _sweep(tmp_path, ("a",)).failed


def _takes_lock(out: Path) -> bool:
    try:
        with RunFolder(out, COLUMNS).locked():
            return True
    except DecartNBError:
        return False


def test_the_lock_file_is_not_followed_out_of_the_folder(tmp_path: Path) -> None:
    out, victim = tmp_path / "out", tmp_path / "victim"
    out.mkdir()
    victim.write_text("precious")
    (out / LOCK_FILE).symlink_to(victim)
    with pytest.raises(DecartNBError, match=f"Cannot lock {out}") as caught:
        _sweep(out, ("a",))
    assert caught.value.code == ErrorCode.INVALID_INPUT
    assert victim.read_text() == "precious"
