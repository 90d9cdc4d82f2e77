"""The JSONL manifest of an image task: one line per finished item, read back to resume a run."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import IO

__all__ = ["Manifest", "finished_items", "last_records"]

logger = logging.getLogger(__name__)


def last_records(path: Path) -> dict[str, dict]:
    """The last record of every item in the manifest ``path`` (none when it is missing).

    A line that is not JSON (a run killed while writing it) is ignored with a warning.
    """
    last: dict[str, dict] = {}
    if not path.is_file():
        return last
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                last[record["item"]] = record
            except (ValueError, KeyError, TypeError):
                logger.warning("%s line %d is not a manifest record; ignored", path, number)
    return last


def finished_items(path: Path, root: Path) -> set[str]:
    """Names of the items whose last record in ``path`` is "ok" and whose output file exists."""
    return {name for name, record in last_records(path).items()
            if record.get("status") == "ok" and record.get("output") and (root / record["output"]).is_file()}


class Manifest:
    """Append-only JSONL writer: each record is one line, flushed and synced as it is written.

    Records: ``{"item": name, "status": "ok" | "failed", "output": file relative to the output
    folder (null when failed), "seconds": time spent on the item, "reason": why it failed (null)}``.
    """

    def __init__(self, path: Path, *, fresh: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle: IO[str] = open(path, "w" if fresh else "a", encoding="utf-8")

    def record(self, item: str, status: str, *, output: str | None, seconds: float, reason: str | None) -> None:
        line = json.dumps({"item": item, "status": status, "output": output, "seconds": round(seconds, 4),
                           "reason": reason})
        self._handle.write(line + "\n")

    def sync(self) -> None:
        """Push the records written so far to disk (called after every batch)."""
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self.sync()
        self._handle.close()

    def __enter__(self) -> "Manifest":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
