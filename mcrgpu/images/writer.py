"""The one writer of an image task: a thread that writes results and manifest records while the next batch runs."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable

from mcrgpu.images.decode import short_reason
from mcrgpu.images.manifest import Manifest

__all__ = ["ITEM_ERRORS", "ResultWriter"]

logger = logging.getLogger(__name__)

ITEM_ERRORS = (Exception,)
"""The isolation boundary: whatever one item raises is recorded for that item, and the run goes on."""


class ResultWriter:
    """Writes results in the order it receives them, from one thread, and records each item in the manifest.

    ``results(entries, rows, share)`` hands over a computed batch (``entries`` carry ``item``,
    ``shapes`` and the decoding ``seconds``; ``share`` is each item's part of the batch time);
    ``failed_items(entries, reason)`` records items that never reached the writer. Leaving the
    ``with`` block writes everything handed over (also after Ctrl+C), then stops the thread. An
    error of the manifest itself (a full disk) stops the run: it is raised in the caller's thread.
    """

    def __init__(self, write: Callable, manifest: Manifest, bar: Any) -> None:
        self.write, self.manifest, self.bar = write, manifest, bar
        self.done = self.failed = 0
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=2)  # bounds the results held in memory
        self._thread = threading.Thread(target=self._loop, name="mcrgpu-writer", daemon=True)

    def __enter__(self) -> "ResultWriter":
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self._queue.put(None)
        self._thread.join()
        if self.error is not None and exc is None:
            raise self.error

    def results(self, entries: list, rows: list[dict], share: float) -> None:
        self._put((entries, rows, share, None))

    def failed_items(self, entries: list, reason: str) -> None:
        self._put((entries, None, 0.0, reason))

    def _put(self, task: tuple) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put(task)

    def _loop(self) -> None:
        while (task := self._queue.get()) is not None:
            if self.error is None:
                try:
                    self._handle(*task)
                except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
                    self.error = error

    def _handle(self, entries: list, rows: list[dict] | None, share: float, reason: str | None) -> None:
        for index, entry in enumerate(entries):
            seconds = entry.seconds + share
            if rows is None:
                self._record(entry, "failed", seconds, reason)
                continue
            begin = time.perf_counter()
            try:
                self.write(entry.item, rows[index], entry.shapes)
            except ITEM_ERRORS as error:
                self._record(entry, "failed", seconds, f"writing failed: {short_reason(error)}")
                continue
            self._record(entry, "ok", seconds + time.perf_counter() - begin, None)
        self.manifest.sync()

    def _record(self, entry: Any, status: str, seconds: float, reason: str | None) -> None:
        if status == "ok":
            self.done += 1
        else:
            self.failed += 1
            logger.warning("%s failed: %s", entry.item.name, reason)
        self.manifest.record(entry.item.name, status, output=entry.item.output if status == "ok" else None,
                             seconds=seconds, reason=reason)
        self.bar.update(1)
