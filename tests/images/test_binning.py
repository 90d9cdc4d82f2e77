"""Binning: rule precedence, between, ratios over the whole set, the same CSV on any device count, bad rules, failures."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mcrgpu.errors import FileFormatError, InvalidInputError
from mcrgpu.images import bin_images
from mcrgpu.images.binning_rules import assign_bins, parse_rules, read_rules

from conftest import cpu_strategy
from .binning_support import ScoreModel, export, write_rules
from .support import interrupted

MODELS = {"m": {"path": "unused"}}


def rules_of(bins, default="other", seed=0):
    return parse_rules({"models": MODELS, "bins": bins, "default": default, "seed": seed})


def test_first_matching_bin_wins_and_the_rest_goes_to_the_default():
    rules = rules_of([{"name": "bright", "when": ["m.mean > 0.6"]},
                      {"name": "tall", "when": ["m.height >= 100", "m.mean >= 0.2"]},
                      {"name": "exact", "when": "m.height == 50"}])
    scores = [{"m.mean": 0.7, "m.height": 120}, {"m.mean": 0.5, "m.height": 120}, {"m.mean": 0.1, "m.height": 120},
              {"m.mean": 0.1, "m.height": 50}, {"m.mean": 0.6, "m.height": 10}]
    assert assign_bins(list("abcde"), scores, rules) == ["bright", "tall", "other", "exact", "other"]


def test_between_includes_both_ends_and_the_comparisons_are_strict_or_not_as_written():
    rules = rules_of([{"name": "mid", "when": ["m.mean between 0.25 and 0.5"]},
                      {"name": "low", "when": ["m.mean<0.25"]}, {"name": "high", "when": ["m.mean <= 0.75"]}])
    values = [0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9]
    assert assign_bins([str(v) for v in values], [{"m.mean": v} for v in values], rules) == \
        ["low", "mid", "mid", "mid", "high", "high", "other"]


def test_ratio_caps_a_bin_best_ranked_first_and_the_rest_falls_through():
    rules = rules_of([{"name": "top", "when": ["m.mean > 0.3"], "ratio": 0.2, "rank_by": "m.mean"},
                      {"name": "rest", "when": ["m.mean > 0.5"]}])
    values = [0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.35, 0.2, 0.1, 0.05]
    names = [f"img{i}" for i in range(10)]
    bins = assign_bins(names, [{"m.mean": v} for v in values], rules)
    assert bins == ["top", "top", "rest", "rest", "rest", "other", "other", "other", "other", "other"]
    ascending = rules_of([{"name": "top", "when": ["m.mean > 0.3"], "ratio": 0.2, "rank_by": "m.mean",
                           "rank_order": "ascending"}])
    assert assign_bins(names, [{"m.mean": v} for v in values], ascending)[5:7] == ["top", "top"]


def test_ratio_without_ranking_is_a_fixed_choice_independent_of_order():
    rules = rules_of([{"name": "half", "when": ["m.mean >= 0"], "ratio": 0.5}], seed=3)
    names = [f"img{i:02d}" for i in range(20)]
    scores = [{"m.mean": 1.0}] * 20
    chosen = {n for n, b in zip(names, assign_bins(names, scores, rules)) if b == "half"}
    assert len(chosen) == 10
    backwards = {n for n, b in zip(names[::-1], assign_bins(names[::-1], scores, rules)) if b == "half"}
    assert backwards == chosen
    other_seed = rules_of([{"name": "half", "when": ["m.mean >= 0"], "ratio": 0.5}], seed=4)
    assert {n for n, b in zip(names, assign_bins(names, scores, other_seed)) if b == "half"} != chosen


@pytest.mark.parametrize("data, message", [
    ({"models": MODELS, "bins": [{"name": "a", "when": ["m.mean >> 1"]}]},
     "bin 1 ('a'): condition 'm.mean >> 1' is not 'MODEL.OUTPUT OP NUMBER'"),
    ({"models": MODELS, "bins": [{"name": "a", "when": ["x.mean > 1"]}]}, "'x.mean' must be MODEL.OUTPUT with MODEL one of m"),
    ({"models": MODELS, "bins": [{"name": "a", "when": ["m.mean between 2 and 1"]}]}, "low end above its high end"),
    ({"models": MODELS, "bins": [{"name": "a", "when": []}]}, "when must list one or more conditions"),
    ({"models": MODELS, "bins": [{"name": "a", "when": ["m.mean > 1"], "ratio": 1.5}]}, "ratio must be a number in [0, 1]"),
    ({"models": MODELS, "bins": [{"name": "a/b", "when": ["m.mean > 1"]}]}, "bin 1: name must be"),
    ({"models": MODELS, "bins": [{"name": "other", "when": ["m.mean > 1"]}]}, "['other'] used twice"),
    ({"models": MODELS, "bins": [{"name": "a", "when": ["m.mean > 1"], "colour": 1}]}, "unknown key(s) ['colour']"),
    ({"models": {}, "bins": [{"name": "a", "when": ["m.mean > 1"]}]}, "'models' must name at least one model"),
    ({"models": {"m": {"path": "x", "fit": "crop"}}, "bins": [{"name": "a", "when": ["m.mean > 1"]}]},
     "fit must be \"resize\" or \"pad\""),
    ({"models": MODELS}, "'bins' must be a non-empty list"),
])
def test_malformed_rules_are_one_line_errors(data, message):
    with pytest.raises(InvalidInputError) as caught:
        parse_rules(data, source="rules file r.toml")
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("rules file r.toml: ")


def test_rules_files_in_toml_and_json(tmp_path):
    toml = write_rules(tmp_path / "r.toml", 'default = "rest"\n[models.m]\npath = "models/m"\n'
                                            '[[bins]]\nname = "a"\nwhen = ["m.mean between 0 and 1"]\nratio = 0.5\n')
    rules = read_rules(toml)
    assert rules.models["m"].path == tmp_path / "models" / "m" and rules.default == "rest"
    assert rules.bins[0].ratio == 0.5 and str(rules.bins[0].conditions[0]) == "m.mean between 0 and 1"
    as_json = tmp_path / "r.json"
    as_json.write_text(json.dumps({"default": "rest", "models": {"m": "models/m"},
                                   "bins": [{"name": "a", "when": ["m.mean between 0 and 1"], "ratio": 0.5}]}))
    assert read_rules(as_json).bins == rules.bins
    broken = write_rules(tmp_path / "broken.toml", "[[bins]\nname = 1\n")
    with pytest.raises(FileFormatError, match="not valid TOML"):
        read_rules(broken)
    with pytest.raises(FileFormatError, match="expected a .toml or .json file"):
        read_rules(tmp_path / "rules.yaml")


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    return export(ScoreModel(), tmp_path_factory.mktemp("models") / "scorer")


@pytest.fixture(scope="module")
def images(tmp_path_factory, photos):
    """The four photographs and 9 noise images of different brightness (two sizes)."""
    folder = tmp_path_factory.mktemp("bin_images")
    for name, path in photos.items():
        (folder / path.name).write_bytes(path.read_bytes())
    rng = np.random.default_rng(0)
    for i in range(9):
        size = (24, 32) if i % 2 else (32, 32)
        pixels = np.clip(rng.normal(0.1 * (i + 1), 0.05, size + (3,)), 0, 1)
        Image.fromarray((pixels * 255).astype(np.uint8)).save(folder / f"noise{i}.png")
    return folder


RULES = """
default = "dim"
[models.s]
path = "{scorer}"
[[bins]]
name = "bright"
when = ["s.mean > 0.5"]
ratio = 0.2
rank_by = "s.mean"
[[bins]]
name = "reddish"
when = ["s.red between 0.5 and 1", "s.height >= 32"]
ratio = 0.25
"""


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_the_same_csv_on_one_and_three_devices(tmp_path, scorer, images):
    rules = write_rules(tmp_path / "rules.toml", RULES.format(scorer=scorer))
    texts = []
    for replicas in (1, 3):
        out = tmp_path / str(replicas) / "bins.csv"
        summary = bin_images(images, rules, out=out, strategy=cpu_strategy(replicas), batch_size=2, progress=False)
        assert summary.exit_code == 0 and summary.failed == 0
        texts.append(out.read_text())
    assert texts[0] == texts[1]
    rows = read_csv(tmp_path / "1" / "bins.csv")
    assert rows[0] == ["image", "s.height", "s.mean", "s.red", "bin"]  # the non-scalar histogram is left out
    assert len(rows) == 14
    bins = [row[-1] for row in rows[1:]]
    assert bins.count("bright") == 3  # round(0.2 * 13) of the 5 images with mean > 0.5: the brightest
    brightest = sorted(rows[1:], key=lambda row: -float(row[2]))[:3]
    assert all(row[-1] == "bright" for row in brightest)
    assert bins.count("reddish") <= 3 and set(bins) <= {"bright", "reddish", "dim"}
    assert summary.bins == {"bright": 3, "reddish": bins.count("reddish"), "dim": bins.count("dim")}


def test_unknown_output_names_stop_before_any_scoring(tmp_path, scorer, images):
    rules = write_rules(tmp_path / "rules.toml", RULES.format(scorer=scorer).replace("s.red", "s.redness"))
    with pytest.raises(InvalidInputError, match=r"unknown output 's.redness': model 's' has the scalar outputs "
                                                r"height, mean, red$"):
        bin_images(images, rules, out=tmp_path / "bins.csv", progress=False)
    histogram = write_rules(tmp_path / "h.toml", RULES.format(scorer=scorer).replace("s.red ", "s.histogram "))
    with pytest.raises(InvalidInputError, match="unknown output 's.histogram'"):
        bin_images(images, histogram, out=tmp_path / "bins.csv", progress=False)
    assert not (tmp_path / "bins.csv").exists() and not (tmp_path / "bins_scores").exists()


def test_a_model_failing_on_one_image_lands_in_its_manifest_and_the_rest_is_binned(tmp_path, scorer, images):
    fragile = export(ScoreModel(fail_above=0.85), tmp_path / "fragile")  # noise8 (mean ~0.9) makes it fail
    rules = write_rules(tmp_path / "rules.toml", RULES.format(scorer=scorer) + f'[models.f]\npath = "{fragile}"\n')
    out = tmp_path / "bins.csv"
    summary = bin_images(images, rules, out=out, strategy=cpu_strategy(2), batch_size=2, progress=False)
    assert (summary.failed, summary.exit_code) == (1, 3)
    records = [json.loads(line) for line in (tmp_path / "bins_scores" / "f_manifest.jsonl").read_text().splitlines()]
    failed = [r for r in records if r["status"] == "failed"]
    assert [r["item"] for r in failed] == ["f:noise8.png"]
    assert "image too bright for this model" in failed[0]["reason"]
    rows = read_csv(out)
    assert len(rows) == 13 and "noise8.png" not in " ".join(row[0] for row in rows)
    assert rows[0][1:-1] == ["s.height", "s.mean", "s.red", "f.height", "f.mean", "f.red"]
    again = bin_images(images, rules, out=out, strategy=cpu_strategy(2), batch_size=2, progress=False)
    assert again.runs["s"].skipped == 13 and again.runs["f"].skipped == 12 and again.failed == 1
    assert out.read_text() == "\n".join(",".join(row) for row in rows) + "\n"


def test_bin_folders_hold_links_or_copies_and_follow_a_rerun(tmp_path, scorer, images):
    rules = write_rules(tmp_path / "rules.toml", RULES.format(scorer=scorer))
    folders = tmp_path / "bins"
    bin_images(images, rules, out=tmp_path / "bins.csv", bin_folders=folders, progress=False)
    rows = read_csv(tmp_path / "bins.csv")[1:]
    for row in rows:
        link = folders / row[-1] / row[0].rsplit("/", 1)[-1]
        assert link.is_symlink() and link.read_bytes() == (images / link.name).read_bytes()
    assert sum(len(list((folders / name).iterdir())) for name in ("bright", "reddish", "dim")) == 13
    everything_dim = write_rules(tmp_path / "dim.toml", RULES.format(scorer=scorer).replace("> 0.5", "> 5")
                                 .replace("between 0.5 and 1", "between 5 and 6"))
    bin_images(images, everything_dim, out=tmp_path / "bins.csv", bin_folders=folders, copy=True, progress=False)
    assert sorted(p.name for p in (folders / "dim").iterdir()) == sorted(p.name for p in images.iterdir())
    assert not any(path.is_symlink() for path in (folders / "dim").iterdir())
    assert not list((folders / "bright").iterdir()) and not list((folders / "reddish").iterdir())


def test_an_interrupted_model_run_writes_no_csv_and_exits_130(tmp_path, scorer, images, monkeypatch):
    import mcrgpu.images.binning as binning

    monkeypatch.setattr(binning, "run_items", interrupted(binning.run_items))
    rules = write_rules(tmp_path / "rules.toml", RULES.format(scorer=scorer))
    summary = bin_images(images, rules, out=tmp_path / "bins.csv", progress=False)
    assert summary.exit_code == 130 and "rerun to finish" in str(summary)
    assert not (tmp_path / "bins.csv").exists() and (tmp_path / "bins_scores" / "s_manifest.jsonl").is_file()


def test_text_conditions_contain_or_match_and_need_a_text_output():
    ocr = {"ocr": {"detector": "models/d", "recognizer": "models/r"}}
    rules = parse_rules({"models": ocr, "bins": [{"name": "coins", "when": ['ocr.text contains "coins"']},
                                                 {"name": "number", "when": [r'ocr.text matches "^\d+$"',
                                                                             "ocr.text_lines == 1"]}]}, base="/base")
    assert rules.models["ocr"].detector == Path("/base/models/d") and rules.models["ocr"].text_outputs == ("text",)
    assert str(rules.bins[0].conditions[0]) == 'ocr.text contains "coins"'
    scores = [{"ocr.text": "the coins\nand", "ocr.text_lines": 2}, {"ocr.text": "42", "ocr.text_lines": 1},
              {"ocr.text": "Coins", "ocr.text_lines": 1}, {"ocr.text": "42\n43", "ocr.text_lines": 2}]
    assert assign_bins(list("abcd"), scores, rules) == ["coins", "number", "other", "other"]
    rules.check_outputs({"ocr": ["text_area", "text_lines"]}, {"ocr": ["text"]})
    with pytest.raises(InvalidInputError, match=r"'ocr.text' is not a text output: .* model 'ocr' has none "
                                                r"\(give its recognizer"):
        rules.check_outputs({"ocr": ["text_area", "text_lines"]}, {"ocr": []})
    on_number = parse_rules({"models": ocr, "bins": [{"name": "a", "when": ['ocr.text_area contains "x"']}]})
    with pytest.raises(InvalidInputError, match="'ocr.text_area' is not a text output"):
        on_number.check_outputs({"ocr": ["text_area", "text_lines"]}, {"ocr": ["text"]})


@pytest.mark.parametrize("data, message", [
    ({"models": {"o": {"detector": "d"}}, "bins": [{"name": "a", "when": ['o.text matches "("']}]},
     "condition 'o.text matches \"(\"': not a regular expression (missing ), unterminated subpattern"),
    ({"models": {"o": {"detector": "d", "path": "p"}}, "bins": [{"name": "a", "when": ["o.text_lines > 1"]}]},
     "model 'o': unknown key(s) ['path']; an OCR model takes detector and recognizer"),
    ({"models": {"o": {"detector": 3}}, "bins": [{"name": "a", "when": ["o.text_lines > 1"]}]},
     "give its detector SavedModel folder as detector = \"...\"; got 3"),
    ({"models": {"o": {"detector": "d"}}, "bins": [{"name": "a", "when": ["o.text contains coins"]}]},
     "or 'MODEL.OUTPUT contains|matches \"TEXT\"'"),
])
def test_malformed_ocr_rules_are_one_line_errors(data, message):
    with pytest.raises(InvalidInputError) as caught:
        parse_rules(data, source="rules file r.toml")
    assert message in str(caught.value) and "\n" not in str(caught.value)
