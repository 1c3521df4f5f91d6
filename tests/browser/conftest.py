"""Every test module in tests/browser/ gets the harness fixtures (tests/browser/harness.py)."""

from .harness import artifacts, chromium, clip, lab, lab_without_server, notebook, playwright

__all__ = ["artifacts", "chromium", "clip", "lab", "lab_without_server", "notebook", "playwright"]
