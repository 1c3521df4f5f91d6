"""What each results column means, and why one of its cells can be blank.

Every view of a SweepResult says it: the HTML table in its header's tooltip, a dash with the reason
in each blank cell and a footnote per column that has blanks; results.md in footnotes; the
DataFrame in `df.attrs["columns"]` (every column) and `df.attrs["blank"]` (this result's blanks).
"""

from __future__ import annotations

from collections.abc import Iterable

from .rows import Row

__all__ = ["BLANK", "MEANING", "blank_notes", "why_blank"]

BLANK = "—"  # a blank cell as the views show it (CSV and JSON keep it empty / null)

MEANING: dict[str, str] = {
    "index": "the item's place in the run",
    "prompt": "the item's prompt",
    "image": "the reference image's file name (none: no image)",
    "source": "the input the item ran on",
    "arm": "the arm (its engine, model and options) that made the row (blank: a plain sweep, no arms)",
    "seed": "the seed (blank: no seeds were given)",
    "repeat": "which repeat of the combination",
    "enhance": "whether the prompt was enhanced",
    "state_version": "the session's state version the item's frames carry",
    "first_frame_ms": "from set() to the first output frame made with the new state",
    "fps_out": "output rate of the item's own frames",
    "latency_ms_p50": "kernel latency (frame in -> out) of the item's frames, median",
    "latency_ms_p95": "kernel latency of the item's frames, 95th percentile",
    "model_ms_p50": "the engine's own time per frame, median",
    "frames_out": "output frames made with the item's state",
    "frames_dropped": "input frames dropped (newest frame wins) while the item ran",
    "generation_s": (
        "generation seconds Decart billed while the item ran, from its generation ticks (whole "
        "seconds, one tick a second): what the item cost (blank: an engine that bills nothing)"
    ),
    "queue_wait_s": (
        "seconds the lane's session waited in Decart's queue, from its first queue position to "
        "admission (0: not queued); lane-level: every row of a session carries its figure"
    ),
    "time_to_first_frame_ms": (
        "from connect() to the lane's session's first output frame (the queue wait included); "
        "lane-level: every row of a session carries its figure"
    ),
    "mean_r": "mean red of the snapshot (0-255)",
    "mean_g": "mean green of the snapshot (0-255)",
    "mean_b": "mean blue of the snapshot (0-255)",
    "diff_vs_passthrough": (
        "mean absolute difference (0-255) of the snapshot from the untouched input (blank: a sweep on"
        " a session that already had a prompt or image has no untouched input)"
    ),
    "snapshot": "the item's snapshot (PNG in the run folder)",
    "clip": "the item's clip (mp4 in the run folder; blank: record_seconds was 0)",
    "error_code": "why the item failed (blank: it did not)",
    "error": "why the item failed, in words (blank: it did not)",
    "engine_errors": "codes of asynchronous engine errors while the item ran (blank: none)",
    "attempts": "1, or 2 when its first session failed and it was retried",
    "worker": "host:pid:thread that ran it (inline: the caller's session)",
    "key": "the item's identity (what resume matches)",
}

_FAILED = "the item failed (see error)"
_NO_BASE = (
    "no untouched input to compare with: the sweep ran on a session that already had a prompt or "
    "image (sweep(session=...) on a live session); a sweep that opens its own sessions fills it"
)
_MEASURED = ("first_frame_ms", "latency_ms_p50", "latency_ms_p95", "model_ms_p50", "frames_out")
_LANE = ("generation_s", "queue_wait_s", "time_to_first_frame_ms")
_OLDER = " (or the row comes from a run by a decart_nb that did not measure it yet)"
_NOT_BILLED = "an engine that bills nothing: only Decart's cloud reports generation ticks" + _OLDER
_NOT_SEEN = (
    "the sweep ran on a session connected before it (session= or comparison=): its connect was "
    "not seen" + _OLDER
)
_LOOKS = ("mean_r", "mean_g", "mean_b", "snapshot", "state_version")


def why_blank(row: Row, column: str) -> str | None:
    """Why `row[column]` is blank (None if it is not)."""
    if row.get(column) not in (None, ""):
        return None
    failed = bool(row.get("error_code"))
    if column in ("error_code", "error"):
        return "no error: the item ran"
    if column == "engine_errors":
        return "no asynchronous engine error while the item ran"
    if column == "clip":
        return "no clip: record_seconds was 0" if not failed else _FAILED
    if column == "seed":
        return "no seeds were given"
    if column == "arm":
        return "a plain sweep: no arms"
    if failed and (
        column in _MEASURED + _LOOKS + _LANE + ("fps_out", "diff_vs_passthrough") or column not in MEANING
    ):
        return _FAILED
    if column == "generation_s":
        return _NOT_BILLED
    if column in _LANE:
        return _NOT_SEEN
    if column == "diff_vs_passthrough":
        return _NO_BASE
    if column == "fps_out":
        return "fewer than two frames of the item's state: no rate"
    if column in _MEASURED:
        return "none of the item's frames reached the frame log"
    if column not in MEANING:
        return "the metrics hook gave no value"
    return "not measured"


def blank_notes(rows: Iterable[Row], columns: Iterable[str]) -> dict[str, list[str]]:
    """For each column with blank cells in `rows`: the distinct reasons, most frequent first."""
    counts: dict[str, dict[str, int]] = {}
    listed = list(columns)
    for row in rows:
        for column in listed:
            why = why_blank(row, column)
            if why is not None:
                reasons = counts.setdefault(column, {})
                reasons[why] = reasons.get(why, 0) + 1
    return {c: sorted(r, key=lambda why: -r[why]) for c, r in counts.items()}
