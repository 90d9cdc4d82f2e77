"""``mcrgpu images bin``: the CSV, exit codes, and one-line errors for bad rules and unknown outputs."""

import csv

import pytest
from click.testing import CliRunner

from mcrgpu.cli import main

from images.binning_support import ScoreModel, export, write_rules
from images.support import write_photos

RULES = """default = "rest"
[models.s]
path = "scorer"
[[bins]]
name = "bright"
when = ["s.mean > 0.48"]
"""


def run(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_bin")
    export(ScoreModel(), root / "scorer")
    return {"root": root, "photos": write_photos(root / "photos")}


def test_bin_writes_the_csv_and_exits_0(tmp_path, setup):
    rules = write_rules(setup["root"] / "rules.toml", RULES)
    out = tmp_path / "bins.csv"
    result = run("images", "bin", setup["root"] / "photos", "--rules", rules, "--out", out, "--no_progress",
                 "--bin_folders", tmp_path / "bins", "--copy")
    assert result.exit_code == 0, result.output
    assert "4 images binned (bright 1, rest 3), 0 failed" in result.output
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["bin"] for row in rows] == ["rest", "bright", "rest", "rest"]  # astronaut, camera, chelsea, coffee
    assert (tmp_path / "bins" / "bright" / "camera.png").is_file()


@pytest.mark.parametrize("text, message", [
    (RULES.replace("s.mean > 0.48", "s.mean > bright"), "condition 's.mean > bright' is not 'MODEL.OUTPUT OP NUMBER'"),
    (RULES.replace("s.mean", "s.average"), "unknown output 's.average': model 's' has the scalar outputs height, "
                                           "mean, red"),
    (RULES.replace("[[bins]]", "[[bins]"), "not valid TOML"),
])
def test_bad_rules_and_unknown_outputs_are_one_line_errors_with_exit_2(tmp_path, setup, text, message):
    rules = write_rules(setup["root"] / "bad.toml", text)
    result = run("images", "bin", setup["photos"]["astronaut"], "--rules", rules, "--out", tmp_path / "b.csv")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: rules file ") and message in lines[0]
    assert not (tmp_path / "b.csv").exists()


def test_copy_needs_bin_folders(tmp_path, setup):
    rules = write_rules(setup["root"] / "rules.toml", RULES)
    result = run("images", "bin", setup["photos"]["astronaut"], "--rules", rules, "--out", tmp_path / "b.csv", "--copy")
    assert result.exit_code == 2 and "--copy applies to --bin_folders" in result.output
