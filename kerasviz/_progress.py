"""The one progress display of kerasviz: a line with done/total, the rate and the time left.

Every long computation (batched forward passes, occlusion, LIME, activation maximization,
dataset jobs, the report) reports through `Progress`. It writes to stderr, so stdout stays clean
for results; ``enabled=False`` or the environment variable ``KERASVIZ_QUIET`` (any non-empty
value; the command line's ``--quiet`` sets it) silence it.
"""

from __future__ import annotations

import os
import sys
import time

QUIET_ENV = "KERASVIZ_QUIET"
REDRAW = 0.1  # seconds between two redraws of the line on a terminal


def quiet() -> bool:
    """Whether ``KERASVIZ_QUIET`` silences every progress display."""
    return bool(os.environ.get(QUIET_ENV))


def clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from one hour."""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """A one-line progress bar: done/total, items per second and time left (ETA).

    The rate is measured on this run's items only (``done`` at the start is not counted), so a
    resumed job's ETA is not flattered by the work finished before. On a terminal the line is
    redrawn in place; otherwise a line is printed at most every ``every`` seconds and at the
    end. A bar whose work is already done at the start prints nothing. A silenced bar costs
    nothing, so callers update it unconditionally.

    Args:
        total: items in all; ``None`` when unknown (a stream): the line then shows the count
            and the rate, no bar and no time left, and ends on ``update(done, finalize=True)``.
        done: items already done at the start.
        label: what is being computed, at the start of the line.
        enabled: ``False`` silences it (as does ``KERASVIZ_QUIET``).
        every: seconds between two printed lines when the stream is not a terminal.
        stream: where to write; default: ``sys.stderr``.
        unit: the items' unit in the rate (``"img"`` gives ``img/s``).

    >>> bar = Progress(total=1000, done=250, label="gradcam")
    >>> bar.update(260)  # prints e.g. "gradcam  260/1000 [##-------]  41.2 img/s  ETA 0:18"
    """

    def __init__(
        self,
        total: int | None,
        done: int = 0,
        label: str = "",
        enabled: bool = True,
        every: float = 10.0,
        stream=None,
        unit: str = "img",
    ):
        self.total = None if total is None else int(total)
        self.start_done, self.label = int(done), label or ""
        self.shown = bool(enabled) and not quiet()
        self.enabled = self.shown and (self.total is None or self.total > self.start_done)
        self.stream = sys.stderr if stream is None else stream
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every = float(every)
        self.unit = unit
        self.started = time.perf_counter()
        self.last = -1e9
        self._width = 0

    def line(self, done: int) -> str:
        """The progress line for ``done`` items (without a newline)."""
        elapsed = time.perf_counter() - self.started
        new = done - self.start_done
        rate = new / elapsed if elapsed > 0 and new > 0 else 0.0
        head = f"{self.label}  " if self.label else ""
        if self.total is None:
            return f"{head}{done}  {rate:.1f} {self.unit}/s  elapsed {clock(elapsed)}"
        left = (self.total - done) / rate if rate > 0 else float("nan")
        width = 24
        fill = min(width, int(width * done / max(self.total, 1)))
        eta = clock(left) if left == left else "?"
        return (
            f"{head}{done}/{self.total} [{'#' * fill}{'-' * (width - fill)}]  "
            f"{rate:.1f} {self.unit}/s  elapsed {clock(elapsed)}  ETA {eta}"
        )

    def update(self, done: int, finalize: bool | None = None) -> None:
        """Report that ``done`` items (in all, not since the last call) are finished.

        ``finalize=True`` ends the line although ``done < total`` (work that stops early, or a
        stream of unknown length); ``None``: when ``done`` reaches ``total``.
        """
        if not self.enabled:
            return
        now = time.perf_counter()
        if finalize is None:
            final = self.total is not None and done >= self.total
        else:
            final = bool(finalize)
        if self.tty:
            if final or now - self.last >= REDRAW:
                text = self.line(done)
                pad = " " * max(0, self._width - len(text))
                self._width = len(text)
                self.stream.write("\r" + text + pad + ("\n" if final else ""))
                self.last = now
        elif final or now - self.last >= self.every:
            self.stream.write(self.line(done) + "\n")
            self.last = now
        self.stream.flush()

    def note(self, text: str) -> None:
        """One line ``[label] text`` (a stage of a long task), unless silenced."""
        if not self.shown:
            return
        head = f"[{self.label}] " if self.label else ""
        self.stream.write(f"{head}{text}\n")
        self.stream.flush()
