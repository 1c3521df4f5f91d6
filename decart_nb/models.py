"""The realtime model catalogue (Decart's Python SDK table)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import DecartNBError, ErrorCode

__all__ = ["ModelSpec", "realtime", "realtime_names"]


@dataclass(frozen=True)
class ModelSpec:
    """What a realtime model expects from the camera."""

    name: str
    fps: int
    width: int
    height: int
    kind: str = "lucy"  # "lucy" (character), "vton" (garment) or "restyle"

    @property
    def frame_interval(self) -> float:
        return 1.0 / self.fps


def _spec(name: str, height: int = 720, kind: str = "lucy") -> ModelSpec:
    return ModelSpec(name=name, fps=30, width=1280, height=height, kind=kind)


_REALTIME: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _spec("lucy-2.1"),
        _spec("lucy-2.5"),
        _spec("lucy-2.6"),
        _spec("lucy-vton-3.5", kind="vton"),
        _spec("lucy-vton-3.6", kind="vton"),
        _spec("lucy-restyle-2", height=704, kind="restyle"),
        _spec("lucy-latest"),
        _spec("lucy-vton-latest", kind="vton"),
        _spec("lucy-restyle-latest", height=704, kind="restyle"),
    )
}


def realtime(name: str) -> ModelSpec:
    """The spec of a realtime model; raises MODEL_NOT_FOUND for an unknown name."""
    try:
        return _REALTIME[name]
    except (KeyError, TypeError):
        raise DecartNBError(
            ErrorCode.MODEL_NOT_FOUND,
            f"Model {name} not found. Realtime models: {', '.join(_REALTIME)}",
            data={"model": str(name)},
        ) from None


def realtime_names() -> list[str]:
    return list(_REALTIME)
