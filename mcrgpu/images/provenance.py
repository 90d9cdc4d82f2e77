"""What produced an image task's outputs (inputs, model, options), checked before a rerun resumes or skips."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from mcrgpu.errors import InvalidInputError
from mcrgpu.io import atomic_write_text

__all__ = ["record_path", "identity", "model_fingerprint", "check_and_record"]

_FORMAT = 1


def record_path(manifest: Path) -> Path:
    """The record beside a manifest: ``grid_manifest.jsonl`` -> ``grid_provenance.json``."""
    stem = manifest.name.removesuffix(".jsonl").removesuffix("manifest")
    return manifest.with_name(f"{stem}provenance.json")


def identity(value: Any) -> Any:
    """What identifies one input: a file by absolute path, size and modification time; an array by a
    hash of its bytes, shape and dtype; a number or text by itself."""
    if isinstance(value, (str, Path)):
        path = Path(value).absolute()
        try:
            stat = path.stat()
        except OSError:
            return {"path": str(path), "size": None, "modified_ns": None}
        return {"path": str(path), "size": stat.st_size, "modified_ns": stat.st_mtime_ns}
    if isinstance(value, np.ndarray) and value.ndim:
        array = np.ascontiguousarray(value)
        return {"blake2b": hashlib.blake2b(array.tobytes(), digest_size=16).hexdigest(),
                "shape": list(array.shape), "dtype": array.dtype.str}
    return value.item() if isinstance(value, (np.generic, np.ndarray)) else value


def model_fingerprint(path: str | Path) -> str:
    """A hash of a SavedModel's graph (``saved_model.pb``) and variable index (``variables/variables.index``,
    which holds a checksum of every variable's data): another model, or other weights, give another value."""
    digest = hashlib.blake2b(digest_size=16)
    for part in ("saved_model.pb", "variables/variables.index"):
        file = Path(path) / part
        digest.update(part.encode() + b"\0")
        if file.is_file():
            with open(file, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def check_and_record(manifest: Path, *, model: str | Path, options: Mapping[str, Any],
                     items: Mapping[str, Mapping[str, Any]], finished: set[str], fresh: bool, what: str,
                     unrecorded: Mapping[str, Path] | None = None) -> None:
    """Refuse a rerun whose finished outputs were made from other inputs, model or options; else record this run.

    The record (JSON, beside the manifest, written atomically before any item runs) holds the
    model's path and fingerprint, the options that change results, and for every item the
    :func:`identity` of each of its inputs. A rerun may resume or skip finished items only when
    the model and every option match, and each finished item it lists again has the same inputs.

    Parameters
    ----------
    manifest : Path
        The task's manifest; the record goes to :func:`record_path` of it.
    model : str or Path
        The SavedModel folder.
    options : mapping
        Every option that changes a result (JSON values), e.g. seed, tile size, stitch mode.
    items : mapping
        Item name -> {input name: value as given to the model (path, array or number)}.
    finished : set of str
        Items the manifest lists as finished (empty with ``fresh``).
    fresh : bool
        The run starts from scratch (overwrite): the old record is replaced unread.
    what : str
        The output as the user knows it, for the message (e.g. ``results/`` or ``out.tif``).
    unrecorded : mapping, optional
        Item name -> its output file, for items not finished whose output exists: allowed only if
        the earlier run had the same model and options and listed the item with the same inputs
        (it was stopped between writing the file and recording it), else refused.

    Raises
    ------
    InvalidInputError
        Finished outputs exist but were made otherwise (the message says what differs), their
        record is missing or unreadable, or a file in the way was not written by this task.
    """
    path = record_path(manifest)
    current = {"format": _FORMAT, "model": {"path": str(Path(model).absolute()), "fingerprint": model_fingerprint(model)},
               "options": json.loads(json.dumps(dict(options))),
               "items": {name: {key: identity(value) for key, value in inputs.items()} for name, inputs in items.items()}}
    current["items"] = json.loads(json.dumps(current["items"]))
    previous = None if fresh else _read(path)
    if finished and not fresh:
        if previous is None:
            raise InvalidInputError(f"{what} holds finished results but no record of what produced them ({path.name} "
                                    "is missing or unreadable): rerun with --overwrite to start from scratch")
        differences = _differences(previous, current, finished)
        if differences:
            more = f" (and {len(differences) - 1} more difference{'s' if len(differences) > 2 else ''})" \
                if len(differences) > 1 else ""
            raise InvalidInputError(f"{what} was made {differences[0]}{more}; rerun with --overwrite to start from "
                                    "scratch, or write elsewhere")
        current["items"] = {**{name: value for name, value in previous["items"].items() if name in finished},
                            **current["items"]}
    if unrecorded and not fresh:
        listed = {} if previous is None or _differences(previous, current, set()) else previous["items"]
        foreign = sorted(name for name in unrecorded if listed.get(name) != current["items"].get(name, {}))
        if foreign:
            others = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
            raise InvalidInputError(f"{str(unrecorded[foreign[0]])!r}{others} exists and was not written by an earlier "
                                    "run of this task with these inputs and settings; rerun with --overwrite to "
                                    "replace it, or write elsewhere")
    atomic_write_text(path, json.dumps(current, indent=1, sort_keys=True) + "\n")


def _read(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != _FORMAT or not isinstance(record.get("items"), dict):
        return None
    return record


def _differences(previous: dict, current: dict, finished: set[str]) -> list[str]:
    """What differs between the record of the finished outputs and this run, as phrases 'made ...'."""
    found = []
    old, new = previous.get("model", {}), current["model"]
    if old.get("fingerprint") != new["fingerprint"]:
        found.append(f"by the model {old.get('path')!r}, not by {new['path']!r} (another graph or other weights)"
                     if old.get("path") != new["path"] else
                     f"by another version of the model {new['path']!r} (it changed since)")
    found += [f"with {change}" for change in _changes(previous.get("options", {}), current["options"])]
    for name in sorted(finished & set(current["items"])):
        found += [f"for {name!r} with {change}" for change in _changes(previous["items"].get(name) or {},
                                                                       current["items"][name])]
    return found


def _changes(old: Mapping, new: Mapping) -> list[str]:
    """'KEY OLD, this run has NEW' for every key whose value differs."""
    changes = []
    for key in sorted(set(old) | set(new)):
        before, now = old.get(key), new.get(key)
        if before == now:
            continue
        if isinstance(before, dict) and isinstance(now, dict) and before.get("path") == now.get("path") is not None:
            changes.append(f"{key} {before['path']} as it was then ({before['size']} bytes, modified "
                           f"{_when(before['modified_ns'])}); it is now {now['size']} bytes, modified "
                           f"{_when(now['modified_ns'])}")
        else:
            changes.append(f"{key} {_shown(before)}, this run has {_shown(now)}")
    return changes


def _when(nanoseconds: int | None) -> str:
    if nanoseconds is None:
        return "never (missing)"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(nanoseconds / 1e9))


def _shown(value: Any) -> str:
    if isinstance(value, dict) and "path" in value:
        return repr(value["path"])
    if isinstance(value, dict) and "blake2b" in value:
        return f"an array {tuple(value['shape'])} (hash {value['blake2b'][:12]})"
    return "(not set)" if value is None else repr(value)
