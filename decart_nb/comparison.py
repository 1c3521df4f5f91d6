"""`compare()`: N arms (engines, models, options, states) side by side on one camera or source.

    >>> from decart_nb import compare
    >>> cmp = compare(["lucy-latest", {"model": "lucy-latest", "engine": "decart",
    ...                                "engine_options": {"speed": "fast"}}], prompt="anime")
    >>> cmp                          # the camera and every arm's output, each with its figures
    >>> cmp.set(prompt="oil painting")                   # every arm, Decart's set() semantics
    >>> cmp["lucy-latest"].set_prompt("pencil sketch")   # one arm: an ordinary Session
    >>> cmp.stats                    # {arm: stats}, each arm's fps and latency on the same frames

Each arm is an ordinary Session whose source is the shared input (fanout.py): the camera (or the
source) is read once, each frame stamped once and handed to every arm.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from PIL import Image

from . import ui_pump
from .arms import Arm, arms_from
from .checks import invalid
from .errors import DecartNBError
from .fanout import Fanout, SharedInput
from .images import ImageInput, load_image
from .session import Session
from .session_core import ConnectionState, Mirror, Stats
from .state import validate_enhance, validate_prompt
from .tracking import TrackerSpec, check_tracker

if TYPE_CHECKING:
    from .sweeps.result import SweepResult

__all__ = ["Comparison", "compare"]

T = TypeVar("T")


def compare(
    arms: object,
    source: object = "camera",
    *,
    prompt: str | None = None,
    image: ImageInput | None = None,
    enhance: bool = True,
    mirror: Mirror = False,
    out_dir: str | os.PathLike[str] | None = None,
    tracker: TrackerSpec = None,
) -> Comparison:
    """A Comparison of `arms` (see `arms_from`: Arm, model names or mappings of Arm fields) on
    one `source` (as Session's: "camera", "pattern", a clip, ...). `prompt`, `image` and
    `enhance` are the initial state of every arm that sets no prompt or image of its own.
    `tracker` ("mlflow", "wandb" or fn(kind, data)) is what `run()` logs to unless it is given
    another. Everything is checked and built here; nothing connects until `connect()` or display."""
    return Comparison(
        arms,
        source,
        prompt=prompt,
        image=image,
        enhance=enhance,
        mirror=mirror,
        out_dir=out_dir,
        tracker=tracker,
    )


class Comparison:
    """Arms side by side on one shared input. `arms` maps each arm's name to its Session (in the
    order given); `input` is the shared input, a Session that transforms nothing (the camera
    widget connects to it; it sends a camera no video back, and once displayed echoes any other
    source so the page can show it)."""

    def __init__(
        self,
        arms: object,
        source: object = "camera",
        *,
        prompt: str | None = None,
        image: ImageInput | None = None,
        enhance: bool = True,
        mirror: Mirror = False,
        out_dir: str | os.PathLike[str] | None = None,
        tracker: TrackerSpec = None,
    ) -> None:
        if prompt is not None:
            validate_prompt(prompt)
        validate_enhance(enhance)
        check_tracker(tracker)
        self.tracker = tracker
        self._arms = arms_from(arms)  # what compare() takes: a list of Arm, model names or mappings
        self._fanout = Fanout()  # echoes only once a view shows a source the page has no preview of
        # The shared input takes the first arm's model: its size and rate are what the camera is asked for.
        self.input = Session(
            self._arms[0].model, engine=self._fanout, source=source, mirror=mirror, out_dir=out_dir
        )
        feed = SharedInput(self._fanout)
        self.arms: dict[str, Session] = {}
        for arm in self._arms:
            own = arm.sets_state
            assert arm.name is not None  # arms_from names every arm
            self.arms[arm.name] = Session(
                arm.model,
                engine=arm.engine,
                source=feed,
                prompt=arm.prompt if own else prompt,
                image=arm.image if own else image,
                enhance=arm.enhance if own else enhance,
                controls=arm.controls,
                api_key=arm.api_key,
                engine_options=arm.engine_options,
                out_dir=out_dir,
            )

    # -- what it is ---------------------------------------------------------------------------
    @property
    def specs(self) -> list[Arm]:
        """The arms as given, named (their `params()` are JSON-safe and keyless)."""
        return list(self._arms)

    def __getitem__(self, name: str) -> Session:
        try:
            return self.arms[name]
        except (KeyError, TypeError):
            raise invalid(
                f"No arm {name!r:.60}; arms: {', '.join(map(repr, self.arms))}", argument="arm"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.arms)

    def __len__(self) -> int:
        return len(self.arms)

    def __repr__(self) -> str:
        source = self.input.source if isinstance(self.input.source, str) else type(self.input.source).__name__
        states = ", ".join(f"{name}={s.state}" for name, s in self.arms.items())
        return f"<decart_nb.Comparison source={source} input={self.input.state} arms: {states}>"

    @property
    def stats(self) -> dict[str, Stats]:
        """Each arm's `stats` (fps, latency p50/p95 from the shared input's stamp, drops)."""
        return {name: s.stats for name, s in self.arms.items()}

    @property
    def state(self) -> dict[str, ConnectionState]:
        return {name: s.state for name, s in self.arms.items()}

    # -- life ---------------------------------------------------------------------------------
    def connect(self) -> Comparison:
        """Connect the shared input, then every arm (at once: a cloud arm's connect takes
        seconds). If any fails, all are disconnected and the first failure is raised."""
        self.input.connect()
        try:
            self._each(lambda s: s.connect())
        except BaseException:
            self.disconnect()
            raise
        return self

    def disconnect(self) -> None:
        """Disconnect every arm and the shared input. Safe twice."""
        try:
            self._each(lambda s: s.disconnect())
        finally:
            self.input.disconnect()

    def __enter__(self) -> Comparison:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # -- state --------------------------------------------------------------------------------
    def set(
        self,
        prompt: str | None = None,
        image: ImageInput | None = None,
        enhance: bool = True,
        *,
        arm: str | None = None,
    ) -> None:
        """Replace the whole state (Decart's set(): a prompt alone clears the image) of every arm
        at once, or of the arm named. Everything is checked before any arm is touched, so a bad
        value leaves every arm as it was; each arm waits for its own acknowledgement."""
        target = None if arm is None else self[arm]
        if prompt is None and image is None:
            raise invalid("At least one of 'prompt' or 'image' must be provided")
        if prompt is not None:
            validate_prompt(prompt)
        validate_enhance(enhance)
        if image is not None:
            load_image(image)  # a bad image fails here, before any arm
        if target is not None:
            target.set(prompt=prompt, image=image, enhance=enhance)
            return
        self._each(lambda s: s.set(prompt=prompt, image=image, enhance=enhance))

    # -- output -------------------------------------------------------------------------------
    def snapshot(self, timeout: float = 5.0) -> dict[str, Image.Image]:
        """Each arm's newest output frame made with its current state."""
        shots = self._each(lambda s: s.snapshot(timeout))
        return dict(zip(self.arms, shots, strict=True))

    def run(self, prompts: object, images: object = (None,), **options: object) -> SweepResult:
        """A sweep of `prompts` x `images` over every arm (one row per arm per item), logged to
        the comparison's tracker unless `tracker=` names another."""
        from .experiments import sweep

        run_sweep: Callable[..., SweepResult] = sweep  # `comparison=`: sweep's arms axis
        return run_sweep(prompts, images, comparison=self, **({"tracker": self.tracker} | options))

    def _repr_mimebundle_(self, **kwargs: object) -> object:
        from .widgets.compare_view import compare_view

        return compare_view(self)._repr_mimebundle_(**kwargs)

    # -- helpers ------------------------------------------------------------------------------
    def _each(self, call: Callable[[Session], T]) -> list[T]:
        """`call` on every arm at once (each blocks on its own engine); results in arm order; the
        first failure (in arm order) is raised once all have returned. On the kernel's main thread
        the page's widget messages are handled meanwhile, as a Session's own waits do."""
        sessions = list(self.arms.values())
        if len(sessions) == 1:
            return [call(sessions[0])]
        pool = ThreadPoolExecutor(len(sessions), thread_name_prefix="decart_nb-compare")
        try:
            futures = [pool.submit(call, s) for s in sessions]
            for future in futures:
                with contextlib.suppress(BaseException):  # each one's failure is read below
                    ui_pump.wait(future, None)
        finally:
            pool.shutdown(wait=True)
        for future in futures:
            error = future.exception()
            if isinstance(error, DecartNBError):
                raise error.with_traceback(None)
            if error is not None:
                raise error
        return [f.result() for f in futures]
