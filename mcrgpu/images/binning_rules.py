"""Binning rules: models by name, ordered bins of conditions on their scalar outputs, a default bin, target ratios."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from mcrgpu.errors import FileFormatError, InvalidInputError

__all__ = ["ModelSpec", "OcrModelSpec", "OCR_OUTPUTS", "TEXT_OPERATORS", "Condition", "Bin", "BinningRules", "read_rules",
           "parse_rules", "assign_bins"]

_OPERATORS = (">=", "<=", "==", ">", "<")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # model and bin names: also folder names
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_CONDITION = re.compile(rf"^\s*(?P<output>[\w-]+\.[\w.-]+)\s*(?:(?P<op>>=|<=|==|>|<)\s*(?P<value>{_NUMBER})"
                        rf"|\s(?P<between>between)\s+(?P<low>{_NUMBER})\s+and\s+(?P<high>{_NUMBER}))\s*$")
_TEXT_CONDITION = re.compile(r'^\s*(?P<output>[\w-]+\.[\w.-]+)\s+(?P<op>contains|matches)\s+"(?P<text>.*)"\s*$')
_FITS = (None, "resize", "pad")
TEXT_OPERATORS = ("contains", "matches")
"""Conditions on a text output: ``contains "..."`` (a substring, case-sensitive) or ``matches "..."`` (a
Python regular expression found anywhere, ``re.search``); the text is everything between the first and
the last double quote, taken literally."""
OCR_OUTPUTS = ("text_area", "text_lines")
"""The numbers an OCR model gives each image: the fraction covered by its text lines' boxes, their count."""


@dataclass(frozen=True)
class ModelSpec:
    """A model the rules name: its SavedModel folder, signature, and how images are fitted to it."""

    name: str
    path: Path
    signature: str = "serving_default"
    fit: str | None = None
    size: tuple[int, int] | None = None


@dataclass(frozen=True)
class OcrModelSpec:
    """An OCR model the rules name: a text detector and, for ``text`` conditions, a text recognizer.

    It gives every image ``text_area`` and ``text_lines`` (:data:`OCR_OUTPUTS`) and, with a
    recognizer, ``text`` (the lines read, joined by newlines).
    """

    name: str
    detector: Path
    recognizer: Path | None = None

    @property
    def text_outputs(self) -> tuple[str, ...]:
        return ("text",) if self.recognizer is not None else ()


@dataclass(frozen=True)
class Condition:
    """``output OP value``, ``output between low and high`` (both ends included), or on a text output
    ``output contains "text"`` / ``output matches "regex"`` (:data:`TEXT_OPERATORS`)."""

    output: str
    op: str
    low: float | None = None
    high: float | None = None
    text: str | None = None

    def holds(self, scores: Mapping[str, float | str]) -> bool:
        value = scores[self.output]
        if self.op == "contains":
            return self.text in value
        if self.op == "matches":
            return re.search(self.text, value) is not None
        if self.op == "between":
            return self.low <= value <= self.high
        return {">": value > self.low, ">=": value >= self.low, "<": value < self.low, "<=": value <= self.low,
                "==": value == self.low}[self.op]

    def __str__(self) -> str:
        if self.op in TEXT_OPERATORS:
            return f'{self.output} {self.op} "{self.text}"'
        if self.op == "between":
            return f"{self.output} between {self.low:g} and {self.high:g}"
        return f"{self.output} {self.op} {self.low:g}"


@dataclass(frozen=True)
class Bin:
    """A bin: every condition must hold; ``ratio`` caps its share of the whole set (best ``rank_by`` first)."""

    name: str
    conditions: tuple[Condition, ...]
    ratio: float | None = None
    rank_by: str | None = None
    descending: bool = True


@dataclass(frozen=True)
class BinningRules:
    """Models, ordered bins (first match wins), the default bin and the seed of the tie-breaking order."""

    models: Mapping[str, ModelSpec | OcrModelSpec]
    bins: tuple[Bin, ...]
    default: str = "other"
    seed: int = 0
    source: str = "rules"

    def outputs_used(self) -> list[str]:
        """Every ``model.output`` a condition or a ``rank_by`` names, in order of appearance."""
        names = [c.output for b in self.bins for c in b.conditions] + [b.rank_by for b in self.bins if b.rank_by]
        return list(dict.fromkeys(names))

    def check_outputs(self, available: Mapping[str, Sequence[str]],
                      texts: Mapping[str, Sequence[str]] | None = None) -> None:
        """Raise InvalidInputError for the first output name no model gives as a scalar (``available``),
        or as a text (``texts``) for a ``contains`` / ``matches`` condition."""
        texts = texts or {}
        on_text = {c.output for b in self.bins for c in b.conditions if c.op in TEXT_OPERATORS}
        for name in self.outputs_used():
            model, output = name.split(".", 1)
            if name in on_text and output not in texts.get(model, ()):
                raise InvalidInputError(
                    f"{self.source}: {name!r} is not a text output: contains and matches apply to the text "
                    f"outputs, and model {model!r} has {', '.join(texts.get(model, ())) or 'none'}"
                    + (" (give its recognizer = \"...\")" if model in texts and not texts[model] else ""))
            if name not in on_text and output not in available[model]:
                raise InvalidInputError(
                    f"{self.source}: unknown output {name!r}: model {model!r} has the scalar outputs "
                    f"{', '.join(available[model]) or 'none'}")


def read_rules(path: str | Path) -> BinningRules:
    """Read a rules file: TOML (``.toml``) or JSON (``.json``); model paths are relative to the file.

    Raises
    ------
    FileFormatError
        The file is missing, of another kind, or not valid TOML/JSON.
    InvalidInputError
        The content is not valid rules (the message names the bin, the key and the value).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise FileFormatError(f"rules file {str(path)!r}: expected a .toml or .json file")
    if not path.is_file():
        raise FileFormatError(f"rules file {str(path)!r}: no such file")
    text = path.read_text(encoding="utf-8")
    try:
        if suffix == ".json":
            data = json.loads(text)
        else:
            data = _toml().loads(text)
    except ValueError as error:  # json.JSONDecodeError and tomllib.TOMLDecodeError are ValueErrors
        raise FileFormatError(f"rules file {path}: not valid {suffix[1:].upper()} ({error})") from None
    return parse_rules(data, base=path.parent, source=f"rules file {path}")


def _toml():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib


def parse_rules(data: Any, *, base: str | Path = ".", source: str = "rules") -> BinningRules:
    """Rules from a parsed TOML/JSON mapping (see the README for the format); paths relative to ``base``."""
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"{source}: expected a table with 'models' and 'bins'; got {type(data).__name__}")
    unknown = sorted(set(data) - {"models", "bins", "default", "seed"})
    if unknown:
        raise InvalidInputError(f"{source}: unknown key(s) {unknown}; valid keys: models, bins, default, seed")
    models = _parse_models(data.get("models"), Path(base), source)
    default = data.get("default", "other")
    if not isinstance(default, str) or not _NAME.match(default):
        raise InvalidInputError(f"{source}: default must be a bin name (letters, digits, _ . -); got {default!r}")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidInputError(f"{source}: seed must be an integer; got {seed!r}")
    raw_bins = data.get("bins")
    if not isinstance(raw_bins, list) or not raw_bins:
        raise InvalidInputError(f"{source}: 'bins' must be a non-empty list of bins ([[bins]] in TOML)")
    bins = tuple(_parse_bin(raw, number, models, source) for number, raw in enumerate(raw_bins, start=1))
    names = [b.name for b in bins] + [default]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidInputError(f"{source}: bin name(s) {repeated} used twice (the default bin counts too)")
    return BinningRules(models, bins, default, seed, source)


def _parse_models(raw: Any, base: Path, source: str) -> dict[str, ModelSpec | OcrModelSpec]:
    if not isinstance(raw, Mapping) or not raw:
        raise InvalidInputError(f"{source}: 'models' must name at least one model, e.g. [models.faces] path = \"...\"")
    models = {}
    for name, spec in raw.items():
        where = f"{source}: model {name!r}"
        if not _NAME.match(name) or "." in name:
            raise InvalidInputError(f"{where}: a model name takes letters, digits, _ and - only")
        if isinstance(spec, str):
            spec = {"path": spec}
        if isinstance(spec, Mapping) and "detector" in spec:
            models[name] = _parse_ocr_model(name, spec, base, where)
            continue
        if not isinstance(spec, Mapping) or not isinstance(spec.get("path"), str):
            raise InvalidInputError(f"{where}: give its SavedModel folder as path = \"...\"")
        unknown = sorted(set(spec) - {"path", "signature", "fit", "size"})
        if unknown:
            raise InvalidInputError(f"{where}: unknown key(s) {unknown}; valid keys: path, signature, fit, size")
        fit, size = spec.get("fit"), spec.get("size")
        if fit not in _FITS:
            raise InvalidInputError(f"{where}: fit must be \"resize\" or \"pad\"; got {fit!r}")
        if size is not None and not (isinstance(size, list) and len(size) == 2 and
                                     all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in size)):
            raise InvalidInputError(f"{where}: size must be [height, width] in pixels; got {size!r}")
        if size is not None and fit is None:
            raise InvalidInputError(f"{where}: size applies to fit = \"resize\" or \"pad\"; add one of them")
        path = Path(spec["path"])
        models[name] = ModelSpec(name, path if path.is_absolute() else base / path,
                                 str(spec.get("signature", "serving_default")), fit, tuple(size) if size else None)
    return models


def _parse_ocr_model(name: str, spec: Mapping, base: Path, where: str) -> OcrModelSpec:
    unknown = sorted(set(spec) - {"detector", "recognizer"})
    if unknown:
        raise InvalidInputError(f"{where}: unknown key(s) {unknown}; an OCR model takes detector and recognizer")
    paths = []
    for key in ("detector", "recognizer"):
        value = spec.get(key)
        if value is not None and not isinstance(value, str):
            raise InvalidInputError(f"{where}: give its {key} SavedModel folder as {key} = \"...\"; got {value!r}")
        paths.append(None if value is None else Path(value) if Path(value).is_absolute() else base / value)
    return OcrModelSpec(name, *paths)


def _parse_bin(raw: Any, number: int, models: Mapping[str, ModelSpec | OcrModelSpec], source: str) -> Bin:
    where = f"{source}: bin {number}"
    if not isinstance(raw, Mapping):
        raise InvalidInputError(f"{where}: expected a table with name and when; got {raw!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(f"{where}: name must be letters, digits, _ . - (it names a folder); got {name!r}")
    where = f"{source}: bin {number} ({name!r})"
    unknown = sorted(set(raw) - {"name", "when", "ratio", "rank_by", "rank_order"})
    if unknown:
        raise InvalidInputError(f"{where}: unknown key(s) {unknown}; "
                                "valid keys: name, when, ratio, rank_by, rank_order")
    when = raw.get("when")
    if isinstance(when, str):
        when = [when]
    if not isinstance(when, list) or not when or not all(isinstance(text, str) for text in when):
        raise InvalidInputError(f"{where}: when must list one or more conditions such as \"stats.sharpness > 100\"; "
                                f"got {when!r} (the catch-all is the default bin)")
    conditions = tuple(_parse_condition(text, models, where) for text in when)
    ratio = raw.get("ratio")
    if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, (int, float))
                              or not 0 <= ratio <= 1 or math.isnan(ratio)):
        raise InvalidInputError(f"{where}: ratio must be a number in [0, 1] (its share of all images); got {ratio!r}")
    rank_by = raw.get("rank_by")
    if rank_by is not None:
        _check_output_name(rank_by, models, f"{where}: rank_by")
    order = raw.get("rank_order", "descending")
    if order not in ("descending", "ascending"):
        raise InvalidInputError(f"{where}: rank_order must be \"descending\" or \"ascending\"; got {order!r}")
    return Bin(name, conditions, None if ratio is None else float(ratio), rank_by, order == "descending")


def _parse_condition(text: str, models: Mapping[str, ModelSpec | OcrModelSpec], where: str) -> Condition:
    on_text = _TEXT_CONDITION.match(text)
    if on_text:
        _check_output_name(on_text["output"], models, f"{where}: condition {text!r}")
        if on_text["op"] == "matches":
            try:
                re.compile(on_text["text"])
            except re.error as error:
                raise InvalidInputError(f"{where}: condition {text!r}: not a regular expression ({error})") from None
        return Condition(on_text["output"], on_text["op"], text=on_text["text"])
    match = _CONDITION.match(text)
    if not match:
        raise InvalidInputError(f"{where}: condition {text!r} is not 'MODEL.OUTPUT OP NUMBER' (OP one of "
                                f"{', '.join(_OPERATORS)}), 'MODEL.OUTPUT between LOW and HIGH' or "
                                "'MODEL.OUTPUT contains|matches \"TEXT\"'")
    output = match["output"]
    _check_output_name(output, models, f"{where}: condition {text!r}")
    if match["between"]:
        low, high = float(match["low"]), float(match["high"])
        if low > high:
            raise InvalidInputError(f"{where}: condition {text!r} has its low end above its high end")
        return Condition(output, "between", low, high)
    return Condition(output, match["op"], float(match["value"]))


def _check_output_name(name: Any, models: Mapping[str, ModelSpec | OcrModelSpec], where: str) -> None:
    model = name.split(".", 1)[0] if isinstance(name, str) and "." in name else None
    if model not in models:
        raise InvalidInputError(f"{where}: {name!r} must be MODEL.OUTPUT with MODEL one of {', '.join(models)}")


def assign_bins(names: Sequence[str], scores: Sequence[Mapping[str, float]], rules: BinningRules) -> list[str]:
    """The bin of every image: its first matching bin that still has room, else the default bin.

    Bins are filled in rule order. A bin with a ``ratio`` takes at most ``round(ratio * N)``
    (halves up) of the N images, its best candidates by ``rank_by`` (ties, and bins without
    ``rank_by``, in a fixed pseudo-random order: a hash of the seed and the image name); the
    candidates it leaves go on to their next matching bin. The result depends on the names and
    scores only, not on the order or the devices they were scored on.
    """
    total = len(names)
    chosen: list[str | None] = [None] * total
    for bin_ in rules.bins:
        candidates = [i for i in range(total) if chosen[i] is None and all(c.holds(scores[i]) for c in bin_.conditions)]
        if bin_.ratio is not None:
            sign = -1.0 if bin_.descending else 1.0
            candidates.sort(key=lambda i: (sign * scores[i][bin_.rank_by] if bin_.rank_by else 0.0,
                                           _tie_break(names[i], rules.seed)))
            candidates = candidates[: math.floor(bin_.ratio * total + 0.5)]
        for i in candidates:
            chosen[i] = bin_.name
    return [name if name is not None else rules.default for name in chosen]


def _tie_break(name: str, seed: int) -> bytes:
    return hashlib.blake2b(f"{seed}\x1f{name}".encode("utf-8"), digest_size=8).digest()
