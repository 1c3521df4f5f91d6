"""run.json: where a run folder's rows came from (issue 23).

One entry per run of the folder (a resumed run appends its own, so the folder keeps the history of
its runs), written when the run starts (status "running") and completed when it ends ("finished",
"interrupted" or "failed"): decart_nb and the Decart SDK's versions, Python and the key packages,
the machine, the models requested and what they resolved to, the engines and their options, the
transport and pipe (a headless sweep has none), the start and end times, one entry per arm.

Never a secret: the API key is not read at all (engines' public option attributes only), option
names that look like secrets are written as "***", and a URL keeps only its scheme, host and path.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ..engines.base import Engine
from ..models import ModelSpec, catalogue_source
from ..session import Session
from .folder_io import free_name, replace_file

__all__ = [
    "RUN_JSON",
    "RunRecord",
    "Subject",
    "engine_entry",
    "environment",
    "model_entry",
    "run_entry",
    "safe_options",
    "transport_entry",
]

logger = logging.getLogger("decart_nb")

RUN_JSON = "run.json"
FORMAT = 1
#: Always listed (None if missing): what the media path is made of.
KEY_PACKAGES = ("aiortc", "av", "numpy", "pillow")
#: Listed when installed: the notebook front end and the trackers and clusters a run may use.
OPTIONAL_PACKAGES = ("jupyterlab", "ipywidgets", "anywidget", "mlflow", "wandb", "dask", "distributed")
#: Engine attributes that are the service's connect options (Decart's: engines/decart/engine.py).
ENGINE_OPTIONS = ("resolution", "speed", "codec", "base_url", "restart_billed_session")
_SECRET_WORDS = ("key", "token", "secret", "password", "passwd", "credential", "auth")
HIDDEN = "***"

Json = dict[str, object]


# -- what the run ran on ---------------------------------------------------------------------------
def environment() -> Json:
    """decart_nb, the SDK, Python, the key packages and the machine."""
    from .. import __version__

    packages = {name: _version(name) for name in KEY_PACKAGES}
    packages |= {name: v for name in OPTIONAL_PACKAGES if (v := _version(name)) is not None}
    return {
        "decart_nb": __version__,
        "decart_sdk": _version("decart"),
        "model_catalogue": catalogue_source(),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
        },
        "packages": packages,
        "machine": {
            "platform": platform.platform(),
            "machine": platform.machine(),
            "processor": platform.processor() or None,
            "host": platform.node() or None,
            "cpu_count": os.cpu_count(),
            "memory_bytes": _memory(),
        },
    }


def model_entry(requested: str, spec: ModelSpec) -> Json:
    """The model asked for, and what decart_nb resolved it to. Decart resolves a `-latest` alias
    on its side and does not say to what: that is written as `server_resolves_alias`."""
    return {
        "requested": requested,
        "resolved": {
            "name": spec.name,
            "kind": spec.kind,
            "width": spec.width,
            "height": spec.height,
            "fps": spec.fps,
            "speeds": list(spec.speeds),
        },
        "server_resolves_alias": spec.name.endswith("-latest"),
    }


def engine_entry(given: object, engine: Engine, options: Mapping[str, object] | None) -> Json:
    """The engine as given (a name, or a function's qualified name), its class, the options the
    user passed and the service options it runs with (resolution, speed, codec), secrets hidden."""
    if isinstance(given, str):
        name = given
    else:
        name = "function:" + str(getattr(given, "__qualname__", None) or type(given).__qualname__)
    running = {k: getattr(engine, k) for k in ENGINE_OPTIONS if hasattr(engine, k)}
    return {
        "engine": name,
        "class": f"{type(engine).__module__}.{type(engine).__qualname__}",
        "billed": engine.owns_connection_state,
        "options": safe_options(options or {}),
        "running_options": safe_options(running),
    }


def safe_options(options: Mapping[str, object]) -> Json:
    """Options fit for a file anyone may read: secret-looking names hidden, URLs without
    credentials or query, anything that is not plain JSON by its type name."""
    safe: Json = {}
    for name, value in options.items():
        text = str(name)
        if any(word in text.lower() for word in _SECRET_WORDS):
            safe[text] = HIDDEN
        elif isinstance(value, str) and "://" in value:
            safe[text] = _bare_url(value)
        elif value is None or isinstance(value, (bool, int, float, str)):
            safe[text] = value
        else:
            safe[text] = f"<{type(value).__name__}>"
    return safe


def transport_entry(session: Session | None) -> Json:
    """The page's transport and pipe of a live session; a headless run has none."""
    if session is None:
        return {"mode": "headless", "transport": None, "pipe": None}
    stats = session.stats
    return {
        "mode": "session",
        "source": session.source if isinstance(session.source, str) else type(session.source).__name__,
        "transport": stats.get("transport"),
        "pipe": stats.get("pipe"),
    }


@dataclass(frozen=True)
class Subject:
    """One engine a run measures: a plain sweep's (name None) or one arm's."""

    name: str | None
    model: str  # as requested
    engine: object  # as given: a name, a function, an Engine
    session: Session  # built (not connected): what the model and engine resolved to
    options: Mapping[str, object] | None = None
    params: Mapping[str, object] | None = None  # an arm's Arm.params()


def run_entry(subjects: list[Subject], live: Session | None, described: Mapping[str, object]) -> Json:
    """A run's entry (before its times and status): what it ran on and what it measured."""
    entry = environment()
    plain = [s for s in subjects if s.name is None]
    if plain:
        entry["model"] = model_entry(plain[0].model, plain[0].session.model)
        entry["engine"] = engine_entry(plain[0].engine, plain[0].session.engine, plain[0].options)
    entry["arms"] = [
        dict(s.params or {"name": s.name})
        | {
            "model": model_entry(s.model, s.session.model),
            "engine": engine_entry(s.engine, s.session.engine, s.options),
        }
        for s in subjects
        if s.name is not None
    ] or None
    entry["transport"] = transport_entry(live)
    return entry | dict(described)


# -- the file --------------------------------------------------------------------------------------
class RunRecord:
    """This run's entry in out/run.json, after the entries of the folder's earlier runs."""

    def __init__(self, out: Path, entry: Json) -> None:
        self.path = out / RUN_JSON
        self.runs = self._earlier()
        self.entry: Json = {"status": "running", "started_at": _now(), "ended_at": None} | entry
        self._t0 = time.monotonic()

    def start(self) -> None:
        self._write()

    def finish(self, status: str, **figures: object) -> None:
        self.entry |= {"status": status, "ended_at": _now()}
        self.entry |= {"duration_s": round(time.monotonic() - self._t0, 2)} | figures
        self._write()

    def _write(self) -> None:
        document = {"format": FORMAT, "runs": [*self.runs, self.entry]}
        data = (json.dumps(document, indent=2, default=str) + "\n").encode()
        replace_file(self.path, lambda f: f.write(data))

    def _earlier(self) -> list[object]:
        """The earlier runs' entries; a file that is not a run.json is set aside (renamed, with a
        warning), never lost, and the history starts again."""
        if not os.path.lexists(self.path):
            return []
        try:
            if self.path.is_symlink():
                raise ValueError("it is a link")
            document = json.loads(self.path.read_bytes())
            runs = document["runs"]
            if not isinstance(runs, list):
                raise ValueError("its runs are not a list")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            aside = free_name(self.path.with_name("run.damaged.json"))
            os.replace(self.path, aside)
            logger.warning(
                "decart_nb sweep: %s is not a run record (%s); set aside as %s", self.path, exc, aside
            )
            return []
        return runs


def _version(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # not POSIX
        pass
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().total)


def _bare_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
