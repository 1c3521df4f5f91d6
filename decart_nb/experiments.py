"""Sweeps: one results row per (source, prompt, reference image, seed, repeat), in a resumable folder.

    >>> from decart_nb.experiments import sweep
    >>> result = sweep(["anime", "film noir"], images=[None, "ref.png"], source="pattern")
    >>> result                  # a table with thumbnails in a notebook
    >>> result.contact_sheet()  # a labelled grid of the snapshots

Each session runs many items, a set() per item (as with Decart: no reconnect for a new prompt), so
the figures compare prompts and images, not connection set-ups. `concurrency=N` runs N sessions at
once; `executor=` (a concurrent.futures Executor or a Dask Client) runs them elsewhere. Every
finished row is appended to results.jsonl at once, so a re-run with the same `out_dir` skips what
is done. A failing item (a bad image, a timeout) is recorded in its row with its error code and the
sweep goes on; a failing session is replaced and its item retried once.

`arms=` compares engines, models and options on the same input (a Comparison per source, a row per
arm per item); `comparison=` sweeps a Comparison you hold. run.json in the folder says what each
run ran on (sweeps/provenance.py); `tracker=` logs the run to MLflow, W&B or a function.
"""

from __future__ import annotations

import concurrent.futures
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .checks import check_mapping
from .engines.base import Engine
from .images import ImageInput
from .media.sources import check_source
from .secret_key import SecretKey, hidden
from .session import Session
from .state import validate_enhance
from .sweeps import arguments
from .sweeps.arm_lanes import run_arms
from .sweeps.arm_specs import arm_identities, check_arms
from .sweeps.dispatch import Executor, dispatch
from .sweeps.items import Item, build_items
from .sweeps.lanes import Lane, Outcome, RunSpec, close_lanes, run_item
from .sweeps.measure import FRAME_TIMEOUT_S
from .sweeps.progress import Progress
from .sweeps.provenance import RunRecord, Subject, run_entry, safe_options
from .sweeps.result import LABEL_HEIGHT, THUMB_WIDTH, SweepResult
from .sweeps.rows import COLUMNS, Metrics, Row
from .sweeps.run_tracker import RunTracker, check_tracker
from .sweeps.runfolder import RunFolder
from .tracking import TrackerSpec

if TYPE_CHECKING:
    from .arms import Arm
    from .comparison import Comparison

__all__ = ["COLUMNS", "FRAME_TIMEOUT_S", "LABEL_HEIGHT", "THUMB_WIDTH", "SweepResult", "sweep"]


def sweep(
    prompts: Sequence[str | None] | str,
    images: Sequence[ImageInput | None] | ImageInput | None = (None,),
    *,
    source: object = "pattern",
    model: str = "lucy-latest",
    engine: str | Engine | Callable[..., object] = "local",
    enhance: bool = True,
    seconds: float = 2.0,
    frames: int | None = None,
    record_seconds: float = 0.0,
    controls: dict[str, float] | None = None,
    out_dir: str | os.PathLike[str] = "out/sweep",
    session: Session | None = None,
    progress: bool | str = False,
    sources: Sequence[object] | None = None,
    seeds: Sequence[int] | None = None,
    repeats: int = 1,
    metrics: Metrics | None = None,
    concurrency: int | None = None,
    executor: Executor | None = None,
    resume: bool = True,
    retry_failed: bool = False,
    arms: Sequence[object] | None = None,
    comparison: Comparison | None = None,
    tracker: TrackerSpec = None,
    engine_options: Mapping[str, object] | None = None,
    api_key: str | None = None,
) -> SweepResult:
    """Run every (source, prompt, image, seed, repeat) combination and measure each.

    Per item: set(prompt, image, enhance); wait for the first frame of the new state; let it run
    `seconds` (or until `frames` frames of the new state came out); snapshot; optionally record
    `record_seconds` of video; `metrics(snapshot, row)` may add columns. Rows are appended to
    `out_dir`/results.jsonl and results.csv as items finish; at the end results.csv (item order),
    results.md and contact_sheet.png are written; run.json says what the run ran on (versions,
    machine, models, engine options, times), one entry per run of the folder.

    - `sources`: several sources (clips, images, "pattern") as an axis; default `[source]`.
    - `seeds`, `repeats`: more axes; each (seed, repeat) is its own item and row.
    - `arms`: engines/models/options compared on the same input (Arm, a model name, or a dict of
      Arm's fields): each source opens one Comparison, every item sets all arms, one row per arm
      (the `arm` column). `comparison`: sweep on a live Comparison you hold (it stays open).
    - `concurrency`: sessions at once (default 1; with `executor`, its worker count).
    - `executor`: a concurrent.futures Executor or a dask.distributed Client.
    - `resume`: skip items whose row is already in `out_dir` (failed ones too, unless
      `retry_failed`); `resume=False` starts over, setting earlier results aside (renamed
      `results.jsonl.previous`, then `.previous.1`, ...; never replaced or deleted).
    - `tracker`: "mlflow", "wandb" or a function fn(kind, data): one tracker run per sweep, a
      child per row; its failures never stop the sweep (`result.tracker_errors`, a warning).
    - `engine_options`, `api_key`: as Session's (the key is never written anywhere).

    One run uses a folder at a time (a lock): a second sweep on a busy `out_dir` stops with
    FOLDER_BUSY; a resume from a damaged results.jsonl stops with INVALID_INPUT naming the line.
    - `session`: sweep over a connected session you have (e.g. the camera one); it stays open.
    - `progress`: True for a tqdm bar, "lines" for a printed line per item.
    """
    key = hidden(api_key)  # at once: this frame is in every argument error's traceback
    del api_key
    prompts = arguments.prompt_list(prompts)
    images = arguments.image_list(images)
    arguments.check_args(prompts, images, seconds, frames, record_seconds)
    validate_enhance(enhance)
    arguments.check_options(progress, repeats, metrics, resume, retry_failed)
    arm_list = check_arms(arms, comparison, session)
    live = session if comparison is None else comparison.input
    source_list = arguments.source_list(source, sources, live)
    seed_list: list[int | None] = arguments.seed_list(seeds)
    inline = live is not None or any(check_source(s) == "iterator" for s in source_list)
    options = dict(check_mapping("engine_options", engine_options) or {}) or None
    plain = {"model": model != "lucy-latest", "engine": engine != "local", "engine_options": options}
    arguments.check_extras(
        arm_list, concurrency, executor, key, plain | {"api_key": key, "controls": controls}
    )
    workers = arguments.check_concurrency(concurrency, executor, inline, engine)
    check_tracker(tracker)
    # Built (every argument checked) before out_dir is made; never connected.
    built = _build(arm_list, comparison, session, source_list, model, engine, controls, options, key)
    out = arguments.make_out_dir(out_dir)
    # Numbers as floats: seconds=1 and seconds=1.0 are the same measurement, so the same identity.
    settings = {"model": model, "engine": arguments.engine_name(engine, session), "enhance": enhance}
    settings |= {"seconds": float(seconds), "frames": frames, "record_seconds": float(record_seconds)}
    settings |= {"controls": {k: float(v) for k, v in sorted(controls.items())} if controls else None}
    if options:  # only then: a plain sweep's keys stay those of folders written before the option
        settings["engine_options"] = safe_options(options)
    if arm_list is not None:  # each arm's identity names its model and engine
        settings |= {"model": None, "engine": None}
    idents = arm_identities(arm_list)
    labels = arguments.image_labels(images)
    items = build_items(prompts, images, labels, source_list, seed_list, repeats, settings, idents)
    folder = RunFolder(out, COLUMNS)
    with folder.locked():  # from the first read to the last write: one run at a time
        kept = _resume(folder, items, resume, retry_failed)
        spec = RunSpec(
            run_id=uuid.uuid4().hex[:12],
            model=model,
            engine=engine,
            controls=controls,
            enhance=enhance,
            seconds=float(seconds),
            frames=frames,
            record_seconds=float(record_seconds),
            metrics=metrics,
            single_source=len(source_list) == 1,
            engine_options=options,
            api_key=key,
        )
        todo = [item for item in items if item.key not in kept]
        rows = dict(kept)
        described = {"settings": settings, "resume": resume, "items": len(items), "skipped": len(kept)}
        described |= {
            "concurrency": workers,
            "executor": None if executor is None else type(executor).__name__,
        }
        record = RunRecord(out, {"run_id": spec.run_id} | run_entry(built, live, described))
        record.start()
        tracking = RunTracker(
            tracker,
            name=out.name,
            params=tracker_params(settings, arm_list, out) | {"run_id": spec.run_id},
            out_dir=out,
        )
        bar = Progress(progress, len(items), len(kept), sum(bool(r["error_code"]) for r in kept.values()))

        def finished(outcome: Outcome) -> None:  # the caller's thread, whatever ran the item
            row = folder.store(outcome["row"], outcome["files"])  # files first, then the row
            rows[row["key"]] = row
            bar.update(row)
            tracking.item(row)

        status = "failed"
        try:
            if arm_list is not None or comparison is not None:
                run_arms(todo, spec, finished, arms=arm_list, comparison=comparison)
            else:
                _run(todo, spec, finished, session=session, inline=inline, executor=executor, workers=workers)
            status = "finished"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            bar.close()
            if status != "finished":  # the folder keeps every finished row; run.json says how it ended
                record.finish(status, rows_written=len(rows) - len(kept))
                tracking.finish([record.path])
        result = _result(
            rows, out, spec, items, len(images) * len(seed_list) * repeats * len(idents or [None])
        )
        result.skipped = len(kept)
        result.save()
        record.finish(status, rows_written=len(rows) - len(kept), failed=len(result.failed))
        result.tracker_errors = tracking.finish([record.path, out / "results.csv", out / "contact_sheet.png"])
        if result.tracker_errors:
            record.finish(status, tracker_errors=[e.message for e in result.tracker_errors])
    return result


def _result(
    rows: dict[str, Row], out: Path, spec: RunSpec, items: list[Item], grid_columns: int
) -> SweepResult:
    """The rows in item order, with the passthrough picture of each source."""
    result = SweepResult(
        rows=sorted(rows.values(), key=lambda r: r["index"]), out_dir=out, grid_columns=grid_columns
    )
    for label in dict.fromkeys(item.source_label for item in items):
        path = out / spec.passthrough_name(label)
        if path.exists():
            result.passthroughs[label] = path
    result.passthrough = next(iter(result.passthroughs.values()), None)
    return result


def _build(
    arms: list[Arm] | None,
    comparison: Comparison | None,
    session: Session | None,
    sources: list[object],
    model: str,
    engine: str | Engine | Callable[..., object],
    controls: dict[str, float] | None,
    options: dict[str, object] | None,
    key: SecretKey | None,
) -> list[Subject]:
    """The sessions (or comparisons) of every source, built to check them and never connected;
    what run.json says the models and engines resolved to."""
    if session is not None:
        return [Subject(None, session.model.name, arguments.engine_name(engine, session), session)]
    if arms is not None:
        from .comparison import compare  # imported when used: comparison imports this module

        built = [comparison] if comparison is not None else [compare(arms, source=s) for s in sources]
        return [
            Subject(
                a.name,
                a.model,
                a.engine,
                built[0].arms[str(a.name)],
                a.engine_options,
                a.params() | {"engine_options": safe_options(a.engine_options or {})},
            )
            for a in arms
        ]
    made = [
        Session(model=model, engine=engine, source=s, controls=controls, engine_options=options, api_key=key)  # type: ignore[arg-type]  # a SecretKey is taken as it is
        for s in sources
    ]
    return [Subject(None, model, engine, made[0], options)]


def tracker_params(settings: Mapping[str, object], arms: list[Arm] | None, out: Path) -> dict[str, object]:
    """The sweep's parameters as the tracker run records them (no secret: settings hide them);
    with the run's id, which names its entry in run.json."""
    return dict(settings) | {"arms": None if arms is None else [a.name for a in arms], "out_dir": str(out)}


# -- running ------------------------------------------------------------------------------------
def _run(
    todo: list[Item],
    spec: RunSpec,
    finished: Callable[[Outcome], None],
    *,
    session: Session | None,
    inline: bool,
    executor: Executor | None,
    workers: int,
) -> None:
    if not todo:
        return
    if inline:  # the caller's session, or a source that can be read once: one lane, no replacement
        lane = Lane(spec, todo[0].source, todo[0].source_id, session=session).open()
        try:
            for item in todo:
                outcome = lane.run(item, spec)
                outcome["row"] |= {"attempts": 1, "worker": "inline"}
                finished(outcome)
        finally:
            lane.close()
    elif executor is None and workers == 1:  # in this thread: Ctrl-C lands right here
        try:
            for item in todo:
                finished(run_item(spec, item))
        finally:
            close_lanes(spec.run_id)
    elif executor is None:
        try:
            with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="decart_nb-sweep") as pool:
                dispatch(pool, spec, todo, workers, finished)
        finally:
            close_lanes(spec.run_id)  # after the pool's threads are done: nothing can open one now
    else:
        dispatch(executor, spec, todo, workers, finished)


def _resume(folder: RunFolder, items: list[Item], resume: bool, retry_failed: bool) -> dict[str, Row]:
    """The rows of this sweep's items already in the folder; says what it skips (or sets aside)."""
    where = folder.out
    if not resume:
        earlier, moved = folder.start_over()
        if moved:
            print(
                f"decart_nb sweep: resume=False: starting over in {where}; {earlier} earlier rows moved to "
                f"{moved} (with the earlier results.csv, results.md and contact sheet)",
                flush=True,
            )
        return {}
    stored, torn = folder.load()
    index = {item.key: item.index for item in items}
    kept = {k: r | {"index": index[k]} for k, r in stored.items() if k in index}
    if retry_failed:
        kept = {k: r for k, r in kept.items() if not r["error_code"]}
    folder.begin(sorted(kept.values(), key=lambda r: r["index"]))
    if torn:
        print(
            f"decart_nb sweep: {where}: dropped {torn} unfinished line (an interrupted write); "
            "its item runs again",
            flush=True,
        )
    if kept:
        failed = sum(bool(r["error_code"]) for r in kept.values())
        rest = len(items) - len(kept)
        what = f"{rest} to run" if rest else "nothing to run (resume=False starts over)"
        print(
            f"decart_nb sweep: resuming {where}: {len(kept)} of {len(items)} items already done "
            f"({failed} failed), {what}",
            flush=True,
        )
    return kept
