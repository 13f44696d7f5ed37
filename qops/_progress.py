"""A one-line progress bar on stderr, with no dependency beyond the standard library."""

from __future__ import annotations

import shutil
import sys
import time

__all__ = ["Progress"]


class Progress:
    """A progress bar that rewrites a single line of ``stream``.

    Each redraw starts with a carriage return and pads with spaces over what
    the previous one left, so the bar stays one line on terminals and adds
    only ``\\r``-separated updates to a captured log.  Redraws are throttled to
    one per ``min_interval`` seconds (the first and the last always show).

    Parameters
    ----------
    total : int
        Number of steps.
    stream : file-like, optional
        Where to draw (default ``sys.stderr``).
    enabled : bool
        ``False`` draws nothing (``--no-progress``).
    prefix : str
        Text before the bar.
    min_interval : float
        Seconds between redraws.

    Examples
    --------
    >>> import io
    >>> buf = io.StringIO()
    >>> with Progress(4, stream=buf, prefix="demo", min_interval=0) as bar:
    ...     for step in range(4):
    ...         bar.advance(label=f"step {step}")
    >>> buf.getvalue().rstrip().split("\\r")[-1].startswith("demo [")
    True
    """

    def __init__(self, total, *, stream=None, enabled=True, prefix="qops report", min_interval=0.1, width=24):
        self.total = max(int(total), 0)
        self.done = 0
        self.stream = sys.stderr if stream is None else stream
        self.enabled = bool(enabled)
        self.prefix = prefix
        self.min_interval = float(min_interval)
        self.width = int(width)
        self._label = ""
        self._last_draw = None
        self._last_len = 0
        self._start = time.perf_counter()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def advance(self, n=1, label=None):
        """Count ``n`` more steps done; ``label`` says what runs next."""
        self.done = min(self.done + int(n), self.total)
        if label is not None:
            self._label = str(label)
        self._draw(force=self.done == self.total)

    def set_label(self, label):
        """Show ``label`` (what is running now) without advancing."""
        self._label = str(label)
        self._draw()

    def render(self) -> str:
        """The bar's text (without the carriage return)."""
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self._start
        text = f"{self.prefix} [{bar}] {self.done}/{self.total} {frac * 100:3.0f}% {elapsed:5.1f}s"
        if self._label:
            text += f"  {self._label}"
        columns = shutil.get_terminal_size(fallback=(100, 24)).columns
        return text[: max(columns - 1, 20)]

    def _draw(self, force=False):
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and self._last_draw is not None and now - self._last_draw < self.min_interval:
            return
        text = self.render()
        pad = " " * max(self._last_len - len(text), 0)
        self.stream.write("\r" + text + pad)
        self.stream.flush()
        self._last_draw = now
        self._last_len = len(text)

    def close(self):
        """Draw the final state and end the line."""
        if not self.enabled or self._last_draw is None:
            return
        self._label = ""
        self._draw(force=True)
        self.stream.write("\n")
        self.stream.flush()
        self._last_draw = None
