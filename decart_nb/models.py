"""The realtime model catalogue: the installed Decart SDK's own table, or (without the SDK) an
embedded copy of decart 0.2.4's."""

from __future__ import annotations

import functools
import logging
import typing
from dataclasses import dataclass

from .errors import DecartNBError, ErrorCode

__all__ = ["ModelSpec", "catalogue_source", "realtime", "realtime_names"]

logger = logging.getLogger("decart_nb")


@dataclass(frozen=True)
class ModelSpec:
    """What a realtime model expects from the camera."""

    name: str
    fps: int
    width: int
    height: int
    kind: str = "lucy"  # "lucy" (character), "vton" (garment) or "restyle"
    speeds: tuple[str, ...] = ()  # opt-in speed tiers ("fast")


def _kind(name: str) -> str:
    return "vton" if "vton" in name else "restyle" if "restyle" in name else "lucy"


def _spec(name: str, height: int = 720, fast: bool = False) -> ModelSpec:
    return ModelSpec(
        name, fps=30, width=1280, height=height, kind=_kind(name), speeds=("fast",) if fast else ()
    )


_EMBEDDED: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _spec("lucy-2.1"),
        _spec("lucy-2.5", fast=True),
        _spec("lucy-2.6", fast=True),
        _spec("lucy-vton-3.5", fast=True),
        _spec("lucy-vton-3.6", fast=True),
        _spec("lucy-restyle-2", height=704),
        _spec("lucy-latest", fast=True),
        _spec("lucy-vton-latest", fast=True),
        _spec("lucy-restyle-latest", height=704),
    )
}


@functools.cache
def _catalogue() -> tuple[dict[str, ModelSpec], str]:
    """The SDK's realtime models when it is installed (it knows newer ones), else ours."""
    try:
        from decart import models as sdk_models
        from decart.models import RealTimeModels
    except ImportError:
        return _EMBEDDED, "embedded"
    specs: dict[str, ModelSpec] = {}
    try:
        for name in typing.get_args(RealTimeModels):
            model = sdk_models.realtime(name)
            speeds = tuple(getattr(model, "supported_speeds", ()))
            specs[name] = ModelSpec(name, model.fps, model.width, model.height, _kind(name), speeds)
    except Exception:
        logger.warning("decart_nb: could not read the installed SDK's model table", exc_info=True)
        return _EMBEDDED, "embedded"
    return (specs or _EMBEDDED), ("decart " + _sdk_version() if specs else "embedded")


def _sdk_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("decart")
    except PackageNotFoundError:
        return "?"


def catalogue_source() -> str:
    """Where the model table comes from: "decart <version>" (the installed SDK) or "embedded"."""
    return _catalogue()[1]


def realtime(name: str) -> ModelSpec:
    """The spec of a realtime model; raises MODEL_NOT_FOUND for an unknown name."""
    table = _catalogue()[0]
    try:
        return table[name]
    except (KeyError, TypeError):
        raise DecartNBError(
            ErrorCode.MODEL_NOT_FOUND,
            f"Model {name} not found. Realtime models: {', '.join(table)}",
            data={"model": str(name)},
        ) from None


def realtime_names() -> list[str]:
    return list(_catalogue()[0])
