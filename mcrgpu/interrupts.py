"""Stopping cleanly on Ctrl+C (SIGINT) or SIGTERM: reconstructions, image tasks, and a non-finite loss."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from typing import Iterator

__all__ = ["Interrupted", "NonFiniteLoss", "StopRequest", "exit_code", "request_stop_on_signals", "signals_deferred",
           "stop_on_signals"]

logger = logging.getLogger(__name__)

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_deferral = {"depth": 0, "pending": None}  # see signals_deferred


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; a KeyboardInterrupt so that code waiting for Ctrl+C handles it alike."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signal_name = signal.Signals(signum).name


class NonFiniteLoss(Exception):
    """The loss or its gradient was NaN or infinite: the optimisation cannot continue from there."""


def exit_code(signal_name: str) -> int:
    """The shell's exit code for a process stopped by ``signal_name`` (128 + its number)."""
    return 128 + int(signal.Signals[signal_name])


@contextlib.contextmanager
def _handled(handler) -> Iterator[None]:
    """Install ``handler`` for SIGINT and SIGTERM inside the block, then restore the previous handlers.

    Installed explicitly because a background job of a non-interactive shell starts with SIGINT
    ignored, and SIGTERM's default ends the process without saving anything. Outside the main
    thread Python cannot install handlers; the block then runs with the handlers it has.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in _SIGNALS}
    try:
        yield
    finally:
        for signum, handler_before in previous.items():
            signal.signal(signum, handler_before)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into :class:`Interrupted` inside the block, then restore the handlers."""

    def raise_interrupted(signum, frame):
        if _deferral["depth"]:
            _deferral["pending"] = signum
            return
        raise Interrupted(signum)

    try:
        with _handled(raise_interrupted):
            yield
    finally:
        _deferral["pending"] = None


class StopRequest(threading.Event):
    """Set by the first stop signal inside :func:`request_stop_on_signals`; ``signal_name`` says which."""

    signal_name: str | None = None

    def exit_code(self) -> int:
        """128 + the signal's number (130 for Ctrl+C, 143 for SIGTERM), 130 if set without a signal."""
        return exit_code(self.signal_name or "SIGINT")


@contextlib.contextmanager
def request_stop_on_signals(stop: StopRequest) -> Iterator[None]:
    """Inside the block the first SIGINT or SIGTERM sets ``stop``; a second one raises :class:`Interrupted`.

    For loops that finish the work in flight and then stop at a point of their choosing (an image
    task finishes its batch and writes what is done), where :func:`stop_on_signals` would raise
    in the middle of the work.
    """

    def request(signum, frame):
        if stop.is_set():
            raise Interrupted(signum)
        stop.signal_name = signal.Signals(signum).name
        stop.set()
        logger.warning("Interrupted (%s): finishing the work in flight and keeping what is done "
                       "(a second Ctrl+C or SIGTERM aborts)", stop.signal_name)

    with _handled(request):
        yield


@contextlib.contextmanager
def signals_deferred(active: bool = True) -> Iterator[None]:
    """Hold back a stop signal until the block ends, then raise :class:`Interrupted`.

    For steps that must finish together: an optimiser's state advanced on the device and the
    history recording it. A signal in between would leave a checkpoint whose state is ahead of
    its history. ``active=False`` makes the block a plain one (signals act at once).
    """
    if not active:
        yield
        return
    _deferral["depth"] += 1
    try:
        yield
    finally:
        _deferral["depth"] -= 1
    pending = _deferral["pending"]
    if pending is not None and not _deferral["depth"]:
        _deferral["pending"] = None
        raise Interrupted(pending)
