"""Real-browser tests (JupyterLab + Chromium); the harness is in harness.py."""
