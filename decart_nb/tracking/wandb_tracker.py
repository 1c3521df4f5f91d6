"""Weights & Biases: one run per sweep, one logged step per item, and an "items" table at the end.

W&B has no nested runs. One run per item (grouped by the sweep's name) would start a W&B run, its
files and its sync for every item (a 1,000-item sweep: 1,000 runs); one run per sweep keeps the
sweep one thing in the W&B UI: each item is a step (its metrics charted across items, its snapshot
in the media panel), and the `items` table has one row per item with every column, the snapshot
and the clip, for filtering and grouping. Every call runs on the Tracker's one logging thread.

Offline by default (files under `out_dir/wandb/`, sent later with `wandb sync` if wanted): the mode
is W&B's own WANDB_MODE when the user set it, else "offline". The project is WANDB_PROJECT, else
"decart_nb". W&B does not capture the notebook's console (console="off"), and a run the user
already has open stays open (reinit="create_new").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .params import ParamValue, item_label, split_row

if TYPE_CHECKING:
    import wandb

__all__ = ["DEFAULT_PROJECT", "WandbBackend"]

DEFAULT_PROJECT = "decart_nb"
_Mode = Literal["online", "offline", "disabled", "shared"]
_MODES: dict[str, _Mode] = {
    "online": "online",
    "offline": "offline",
    "disabled": "disabled",
    "shared": "shared",
}


class WandbBackend:
    """The Backend for tracker="wandb" (see base.Backend); used from the logging thread only."""

    label = "W&B"
    needs_start = True

    def __init__(self, out_dir: Path) -> None:
        self._out_dir = Path(out_dir)
        self._run: wandb.Run | None = None
        self._step = 0
        # The table's rows, logged once at the end (a W&B table is immutable once logged): plain
        # rows and file paths, as many as the sweep's own result holds.
        self._rows: list[tuple[dict[str, object], dict[str, Path]]] = []

    def start(self, name: str, params: Mapping[str, ParamValue]) -> None:
        import wandb  # imported here, on the logging thread

        self._out_dir.mkdir(parents=True, exist_ok=True)
        # Read now and passed explicitly: W&B reads WANDB_MODE once per process (its first init), so
        # a user who changes it later, or a sweep after another W&B run, would get the old mode.
        user_mode = os.environ.get("WANDB_MODE", "").strip()
        mode = _MODES.get(user_mode or "offline")  # None: a value W&B itself interprets
        self._run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
            name=name,
            config=dict(params),
            dir=str(self._out_dir),
            mode=mode,
            tags=["decart_nb"],
            reinit="create_new",
            settings=wandb.Settings(console="off", silent=True, disable_git=True),
        )

    def item(self, row: Mapping[str, object], files: Mapping[str, Path]) -> None:
        import wandb

        run = self._started()
        _, metrics = split_row(row)
        data: dict[str, object] = {f"item/{k}": v for k, v in metrics.items()}
        if "snapshot" in files:
            data["snapshot"] = wandb.Image(str(files["snapshot"]), caption=item_label(row))
        run.log(data, step=self._step)
        self._step += 1
        self._rows.append((dict(row), dict(files)))

    def file(self, path: Path) -> None:
        self._started().save(str(path), base_path=str(Path(path).parent), policy="now")

    def end(self) -> None:
        run = self._started()
        try:
            if self._rows:
                run.log({"items": self._table()})
        finally:
            run.finish()

    def _table(self) -> wandb.Table:
        import wandb

        columns: list[str] = []
        for row, _ in self._rows:
            columns += [c for c in row if c not in columns]
        table = wandb.Table(columns=[*columns, "snapshot_image", "clip_video"])
        for row, files in self._rows:
            snapshot = wandb.Image(str(files["snapshot"])) if "snapshot" in files else None
            clip = wandb.Video(str(files["clip"])) if "clip" in files else None
            table.add_data(*[_cell(row.get(c)) for c in columns], snapshot, clip)
        return table

    def _started(self) -> wandb.Run:
        if self._run is None:
            raise RuntimeError("the W&B run was not started")
        return self._run


def _cell(value: object) -> object:
    """A table cell W&B accepts: JSON scalars as they are, anything else as text."""
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)
