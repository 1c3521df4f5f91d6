"""What traitlets hands an `observe` callback: the one untyped shape the widgets take."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

__all__ = ["Change"]

#: A trait change: `new`, `old`, `name`, `owner`, `type`. Any (an exception the issue's report
#: lists): ipywidgets declares no trait types, so `change["new"]` is whatever its trait holds.
Change: TypeAlias = Mapping[str, Any]
