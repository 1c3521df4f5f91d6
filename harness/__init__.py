"""Development only (not in the wheel): drives a real JupyterLab and Chromium for the browser
tests (tests/browser/) and the bench (bench/), and shapes the page's link (shaping.py)."""
