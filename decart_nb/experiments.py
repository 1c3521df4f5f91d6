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
import inspect
import numbers
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from .checks import check_bool, check_mapping, check_number
from .engines.base import Engine
from .errors import DecartNBError, ErrorCode
from .images import ImageInput
from .media.sources import check_source
from .secret_key import SecretKey, hidden
from .session import Session
from .state import validate_enhance, validate_prompt
from .sweeps.arm_lanes import run_arms
from .sweeps.arm_specs import arm_identities, check_arms, check_plain_options
from .sweeps.dispatch import Executor, default_inflight, dispatch, is_dask_client
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

MAX_CONCURRENCY = 64


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
    prompts = _prompt_list(prompts)
    images = _image_list(images)
    _check_args(prompts, images, seconds, frames, record_seconds)
    validate_enhance(enhance)
    _check_options(progress, repeats, metrics, resume, retry_failed)
    arm_list = check_arms(arms, comparison, session)
    live = session if comparison is None else comparison.input
    source_list = _source_list(source, sources, live)
    seed_list: list[int | None] = _seed_list(seeds)
    inline = live is not None or any(check_source(s) == "iterator" for s in source_list)
    options = dict(check_mapping("engine_options", engine_options) or {}) or None
    plain = {"model": model != "lucy-latest", "engine": engine != "local", "engine_options": options}
    _check_extras(arm_list, concurrency, executor, key, plain | {"api_key": key, "controls": controls})
    workers = _check_concurrency(concurrency, executor, inline, engine)
    check_tracker(tracker)
    # Built (every argument checked) before out_dir is made; never connected.
    built = _build(arm_list, comparison, session, source_list, model, engine, controls, options, key)
    out = _make_out_dir(out_dir)
    # Numbers as floats: seconds=1 and seconds=1.0 are the same measurement, so the same identity.
    settings = {"model": model, "engine": _engine_name(engine, session), "enhance": enhance}
    settings |= {"seconds": float(seconds), "frames": frames, "record_seconds": float(record_seconds)}
    settings |= {"controls": {k: float(v) for k, v in sorted(controls.items())} if controls else None}
    if options:  # only then: a plain sweep's keys stay those of folders written before the option
        settings["engine_options"] = safe_options(options)
    if arm_list is not None:  # each arm's identity names its model and engine
        settings |= {"model": None, "engine": None}
    idents = arm_identities(arm_list)
    labels = _image_labels(images)
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


def _check_extras(
    arms: list[Arm] | None,
    concurrency: object,
    executor: object,
    key: SecretKey | None,
    plain: Mapping[str, object],
) -> None:
    """arms= and api_key= against the ways items can run; with arms, no sweep-wide engine."""
    if arms is not None and (concurrency not in (None, 1) or executor is not None):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            "arms= and comparison= run one comparison at a time in this thread (its arms already run "
            "side by side): not with concurrency or an executor",
        )
    if key is not None and executor is not None:
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            "api_key= stays in this kernel: with an executor, set DECART_API_KEY on the workers instead",
        )
    check_plain_options(arms, plain)


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
        return [Subject(None, session.model.name, _engine_name(engine, session), session)]
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


# -- checks -------------------------------------------------------------------------------------
def _image_list(images: Sequence[ImageInput | None] | ImageInput | None) -> list[ImageInput | None]:
    if isinstance(images, (list, tuple)):
        return list(images)
    return [cast("ImageInput | None", images)]  # any other value is one image (a path, bytes, ...)


def _prompt_list(prompts: object) -> list[str | None]:
    """The sweep's prompts, each checked now (None: an image-only item), not item by item."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, (list, tuple)):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT, f"prompts must be a list of strings, not {type(prompts).__name__}"
        )
    checked: list[str | None] = []
    for i, prompt in enumerate(prompts):
        try:
            checked.append(None if prompt is None else validate_prompt(prompt))
        except DecartNBError as exc:
            raise DecartNBError(exc.code, f"prompts[{i}]: {exc.message}", data=exc.data) from None
    return checked


def _check_args(
    prompts: Sequence[object],
    images: Sequence[object],
    seconds: object,
    frames: object,
    record_seconds: object,
) -> None:
    if not prompts or not images:
        raise DecartNBError(
            ErrorCode.INVALID_INPUT, "A sweep needs at least one prompt and one image (or None)"
        )
    check_number("seconds", seconds, 0, 600)
    if frames is not None and (isinstance(frames, bool) or not isinstance(frames, numbers.Integral)):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT, f"frames must be a whole number or None, not {frames!r:.40}"
        )
    if frames is not None:
        check_number("frames", frames, 1, 10_000)
    check_number("record_seconds", record_seconds, 0, 3600)


def _make_out_dir(out_dir: object) -> Path:
    if not isinstance(out_dir, (str, os.PathLike)):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT, f"out_dir must be a folder path, not {type(out_dir).__name__}"
        )
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, a read-only place
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"Cannot use {out} as the sweep's folder: {exc.strerror or exc}",
            cause=exc,
        ) from exc
    return out


def _check_options(progress: object, repeats: object, metrics: object, resume: object, retry: object) -> None:
    if progress != "lines":
        check_bool("progress", progress)
    if isinstance(repeats, bool) or not isinstance(repeats, numbers.Integral):
        raise DecartNBError(ErrorCode.INVALID_INPUT, f"repeats must be a whole number, not {repeats!r:.40}")
    check_number("repeats", repeats, 1, 10_000)
    if metrics is not None and not callable(metrics):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"metrics must be a function fn(snapshot, row) -> dict, not {metrics!r:.40}",
        )
    check_bool("resume", resume)
    check_bool("retry_failed", retry)


def _source_list(source: object, sources: Sequence[object] | None, session: Session | None) -> list[object]:
    if session is not None and not isinstance(session, Session):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT, f"session must be a Session, not {type(session).__name__}"
        )
    if sources is None:
        chosen = [session.source if session is not None else source]
    elif session is not None:
        raise DecartNBError(ErrorCode.INVALID_INPUT, "sources= and session= exclude each other")
    elif not isinstance(sources, (list, tuple)) or not sources:
        raise DecartNBError(ErrorCode.INVALID_INPUT, "sources must be a non-empty list of sources")
    else:
        chosen = list(sources)
    for s in chosen:
        if session is None:
            check_source(s)
    # Paths made absolute: a worker (or a later resume) may run elsewhere than this cell's folder.
    return [_absolute(s) for s in chosen]


def _absolute(source: object) -> object:
    if isinstance(source, (str, os.PathLike)) and str(source) not in ("camera", "pattern"):
        return str(Path(source).resolve())
    return source


def _seed_list(seeds: object) -> list[int | None]:
    if seeds is None:
        return [None]
    if not isinstance(seeds, (list, tuple, range)) or not seeds:
        raise DecartNBError(ErrorCode.INVALID_INPUT, "seeds must be a non-empty list of whole numbers")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise DecartNBError(ErrorCode.INVALID_INPUT, f"seeds must be whole numbers, not {seed!r:.40}")
    return [int(s) for s in seeds]


def _check_concurrency(concurrency: object, executor: object, inline: bool, engine: object) -> int:
    """How many items run at once: `concurrency`, else the executor's workers, else 1."""
    if executor is not None and not (
        is_dask_client(executor) or isinstance(executor, concurrent.futures.Executor)
    ):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            f"executor must be a concurrent.futures Executor or a dask.distributed Client, "
            f"not {type(executor).__name__}",
        )
    if concurrency is None:
        workers = 1 if executor is None else default_inflight(executor)
    elif isinstance(concurrency, bool) or not isinstance(concurrency, numbers.Integral):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT, f"concurrency must be a whole number, not {concurrency!r:.40}"
        )
    else:
        workers = int(check_number("concurrency", concurrency, 1, MAX_CONCURRENCY))
    if inline and (workers > 1 or executor is not None):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            "concurrency and executor need sources that every session can open (paths, 'pattern', "
            "images): not session= or an iterator source",
        )
    many = workers > 1 or executor is not None
    if many and not (isinstance(engine, str) or inspect.isfunction(engine) or inspect.ismethod(engine)):
        raise DecartNBError(
            ErrorCode.INVALID_INPUT,
            "With concurrency or an executor every session needs its own engine: pass the engine's "
            "name or a function, not an Engine object",
        )
    return workers


def _engine_name(engine: object, session: Session | None) -> str:
    """Part of an item's identity: a resumed run must not take another engine's rows for its own."""
    if session is not None:
        return f"session:{session.model.name}:{type(session.engine).__name__}"
    if isinstance(engine, str):
        return engine
    # By name only, not module: a notebook's function lives in __main__, the same one imported
    # elsewhere (a worker, a script) under its module's name, and both must resume each other.
    return "function:" + (getattr(engine, "__qualname__", None) or type(engine).__qualname__)


def _image_labels(images: list[ImageInput | None]) -> list[str]:
    """A short name per image: the file name, or 'none', or 'image<i>' for in-memory images."""
    labels = []
    for i, image in enumerate(images):
        if image is None:
            labels.append("none")
        elif isinstance(image, (str, os.PathLike)):
            labels.append(Path(image).name or str(image))
        else:
            labels.append(f"image{i}")
    return labels
