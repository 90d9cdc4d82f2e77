"""Progress of long loops: tqdm's bar on a terminal, a plain line now and then in a batch job's log."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Callable, TextIO

from tqdm import autonotebook, std
from tqdm.auto import tqdm

__all__ = ["LINE_EVERY_SECONDS", "LINE_EVERY_FRACTION", "PlainProgress", "progress_bar"]

LINE_EVERY_SECONDS = 30.0
"""Off a terminal, a progress line at least this often (seconds) ..."""
LINE_EVERY_FRACTION = 0.1
"""... and each time another this fraction of the total is done, whichever comes first."""


def progress_bar(total: int | None = None, *, initial: int = 0, unit: str = "it", desc: str | None = None,
                 enabled: bool = True, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> Any:
    """A progress display with tqdm's small interface (``update``, ``set_postfix``, ``close``, ``with``).

    On a terminal (``stream.isatty()``) or in a Jupyter notebook it is tqdm's bar, as always. Anywhere
    else, e.g. stderr going to a SLURM output file, a bar's carriage returns would pile thousands of
    updates into one line, so it is a :class:`PlainProgress` writing a plain line every
    :data:`LINE_EVERY_SECONDS` or :data:`LINE_EVERY_FRACTION` of ``total``.

    Parameters
    ----------
    total : int, optional
        Steps expected (None: unknown, no percentage or time left).
    initial : int
        Steps already done (a resumed run).
    unit, desc : str
        What a step is called; what the loop is (the start of each plain line).
    enabled : bool
        False gives a display that shows nothing.
    stream : file-like, optional
        Where to write; default ``sys.stderr`` (read at the call, so redirections apply).
    clock : callable
        Seconds of a monotonic clock (tests pass a fake one).
    """
    stream = sys.stderr if stream is None else stream
    if not enabled:
        return tqdm(disable=True)
    if _interactive(stream):
        return tqdm(total=total, initial=initial, unit=unit, desc=desc, dynamic_ncols=True, file=stream)
    return PlainProgress(total, initial=initial, unit=unit, desc=desc, stream=stream, clock=clock)


def _interactive(stream: TextIO) -> bool:
    """A terminal, or a notebook (whose stderr is no terminal but shows tqdm's widget)."""
    if autonotebook.tqdm is not std.tqdm:
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class PlainProgress:
    """tqdm's small interface writing whole lines: one every ``every_seconds`` or each
    ``every_fraction`` of ``total`` (whichever comes first; default :data:`LINE_EVERY_SECONDS` and
    :data:`LINE_EVERY_FRACTION`, read when the display is made), and a last one when closed.

    A line shows the steps done (and the percentage), the postfix (``loss=..., best=...``), the rate
    since the previous line (steps/s, or s/step when slower than one a second; so the first steps'
    tracing and compiling does not weigh on later lines), the time elapsed and, with a total, the
    time left at that rate. Callers update, then set the postfix of the step just done: a line
    that falls due at ``update`` waits for that ``set_postfix`` (or the next update, or ``close``)
    so that it shows the values of its own step; without any postfix it is written at once.
    """

    def __init__(self, total: int | None = None, *, initial: int = 0, unit: str = "it", desc: str | None = None,
                 stream: TextIO, clock: Callable[[], float] = time.monotonic,
                 every_seconds: float | None = None, every_fraction: float | None = None) -> None:
        every_seconds = LINE_EVERY_SECONDS if every_seconds is None else every_seconds  # read now: settable
        every_fraction = LINE_EVERY_FRACTION if every_fraction is None else every_fraction
        self.total, self.n, self.unit, self.desc = total, initial, unit.strip(), desc or "progress"
        self._stream, self._clock, self._every_seconds = stream, clock, every_seconds
        self._step = max(1, math.ceil(total * every_fraction)) if total else None
        self._start = self._last_time = clock()
        self._next_mark = self._mark_after(initial)
        self._written_n = initial
        self._postfix: dict[str, Any] = {}
        self._pending = self._closed = False

    def update(self, n: int = 1) -> None:
        """Count ``n`` more steps; write a line if one is due."""
        if self._pending:
            self._write()
        self.n += n
        now = self._clock()
        if now - self._last_time >= self._every_seconds or (self._step is not None and self.n >= self._next_mark):
            if self._postfix:
                self._pending = True
            else:
                self._write()

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        """Values shown after the count (as tqdm's ``set_postfix``; ``refresh`` is accepted and unused)."""
        self._postfix = values
        if self._pending:
            self._write()

    def close(self) -> None:
        """Write the last line (unless the last one written already shows every step)."""
        if not self._closed and (self._pending or self.n != self._written_n):
            self._write()
        self._closed = True

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _mark_after(self, n: int) -> float:
        return math.inf if self._step is None else (n // self._step + 1) * self._step

    def _write(self) -> None:
        now = self._clock()
        elapsed = now - self._start
        parts = [f"{self.n}/{self.total} {self.unit} ({100 * self.n / self.total:.0f}%)" if self.total
                 else f"{self.n} {self.unit}"]
        parts += [f"{key}={_value(value)}" for key, value in self._postfix.items()]
        done, seconds = self.n - self._written_n, now - self._last_time  # the rate since the last line
        rate = done / seconds if done > 0 and seconds > 0 else None
        if rate is not None:
            single = self.unit[:-1] if self.unit.endswith("s") and len(self.unit) > 1 else self.unit
            parts.append(f"{rate:.3g} {self.unit}/s" if rate >= 1 else f"{1 / rate:.3g} s/{single}")
        parts.append(f"{std.tqdm.format_interval(elapsed)} elapsed")
        if self.total and rate is not None:
            parts.append(f"{std.tqdm.format_interval(max(self.total - self.n, 0) / rate)} left")
        self._stream.write(f"{self.desc}: {', '.join(parts)}\n")
        self._stream.flush()
        self._last_time, self._written_n, self._pending = now, self.n, False
        self._next_mark = self._mark_after(self.n)


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
