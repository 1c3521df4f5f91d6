"""engine="decart" by name: the `decart_nb.engines` entry point `decart` names PLUGIN.

Building the engine loads Decart's SDK (SDK_NOT_INSTALLED without it); importing this does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from ...secret_key import SecretKey
from ..registry import EnginePlugin
from .engine import OPTIONS, DecartEngine, DecartOptions

__all__ = ["PLUGIN"]


def make(api_key: SecretKey | None, options: Mapping[str, object]) -> DecartEngine:
    """The Session's key (or DECART_API_KEY) and its engine_options, checked by DecartEngine."""
    # The registry passes only the names in OPTIONS; DecartEngine checks each value's type.
    return DecartEngine(api_key, **cast(DecartOptions, options))


PLUGIN = EnginePlugin(make, OPTIONS)
