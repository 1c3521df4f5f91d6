"""sweep()'s arguments, each checked before anything is built or written (INVALID_INPUT naming
the argument), and the lists and labels the sweep's items are made of."""

from __future__ import annotations

import concurrent.futures
import inspect
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from ..checks import check_bool, check_number
from ..errors import DecartNBError, ErrorCode
from ..images import ImageInput
from ..media.sources import check_source
from ..secret_key import SecretKey
from ..session import Session
from ..state import validate_prompt
from .arm_specs import check_plain_options
from .dispatch import default_inflight, is_dask_client

if TYPE_CHECKING:
    from ..arms import Arm

__all__ = [
    "MAX_CONCURRENCY",
    "check_args",
    "check_concurrency",
    "check_extras",
    "check_options",
    "engine_name",
    "image_labels",
    "image_list",
    "make_out_dir",
    "prompt_list",
    "seed_list",
    "source_list",
]

MAX_CONCURRENCY = 64


def check_extras(
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


def image_list(images: Sequence[ImageInput | None] | ImageInput | None) -> list[ImageInput | None]:
    if isinstance(images, (list, tuple)):
        return list(images)
    return [cast("ImageInput | None", images)]  # any other value is one image (a path, bytes, ...)


def prompt_list(prompts: object) -> list[str | None]:
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


def check_args(
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


def make_out_dir(out_dir: object) -> Path:
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


def check_options(progress: object, repeats: object, metrics: object, resume: object, retry: object) -> None:
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


def source_list(source: object, sources: Sequence[object] | None, session: Session | None) -> list[object]:
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


def seed_list(seeds: object) -> list[int | None]:
    if seeds is None:
        return [None]
    if not isinstance(seeds, (list, tuple, range)) or not seeds:
        raise DecartNBError(ErrorCode.INVALID_INPUT, "seeds must be a non-empty list of whole numbers")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise DecartNBError(ErrorCode.INVALID_INPUT, f"seeds must be whole numbers, not {seed!r:.40}")
    return [int(s) for s in seeds]


def check_concurrency(concurrency: object, executor: object, inline: bool, engine: object) -> int:
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


def engine_name(engine: object, session: Session | None) -> str:
    """Part of an item's identity: a resumed run must not take another engine's rows for its own."""
    if session is not None:
        return f"session:{session.model.name}:{type(session.engine).__name__}"
    if isinstance(engine, str):
        return engine
    # By name only, not module: a notebook's function lives in __main__, the same one imported
    # elsewhere (a worker, a script) under its module's name, and both must resume each other.
    return "function:" + (getattr(engine, "__qualname__", None) or type(engine).__qualname__)


def image_labels(images: list[ImageInput | None]) -> list[str]:
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
