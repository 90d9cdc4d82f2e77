"""One-line errors that say what happened in the user's terms (issue 22's misleading messages)."""

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from mcrgpu.cli import main

QUICK = ["--descriptor_types", "FFTCorrelations", "--limit_to", "4", "--max_iter", "5", "--no_progress"]


def run(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


@pytest.fixture
def structure(tmp_path):
    path = tmp_path / "good.npy"
    np.save(path, (np.random.default_rng(0).random((32, 32)) > 0.6).astype(np.int64))
    return path


def test_random_bytes_in_an_npz_are_called_damaged_not_pickled(tmp_path):
    (tmp_path / "random.npz").write_bytes(np.random.default_rng(0).bytes(4096))
    result = run("reconstruct", "--descriptor_filename", tmp_path / "random.npz", "--extent_x", "16", "--extent_y", "16")
    assert result.exit_code == 2
    assert "neither an .npz archive nor a .npy array (random or damaged bytes)" in result.output
    assert "pickle" not in result.output


def test_resume_from_a_characterization_says_it_is_not_a_checkpoint(tmp_path, structure):
    assert run("characterize", structure, *QUICK[:4], "--data_folder", tmp_path / "chars").exit_code == 0
    characterization = tmp_path / "chars" / "good_characterization.npz"
    result = run("match", structure, *QUICK, "--data_folder", tmp_path / "out", "--resume", characterization)
    assert result.exit_code == 2
    assert "holds a characterization (format 'mcrgpu-characterization'), not a checkpoint" in result.output
    assert "_checkpoint.npz" in result.output and "problem" not in result.output


def test_compare_names_the_file_not_its_place_in_the_list(tmp_path, structure):
    np.save(tmp_path / "three_phases.npy", np.arange(32 * 32).reshape(32, 32) % 3)
    result = run("compare", structure, tmp_path / "three_phases.npy")
    assert result.exit_code == 2
    assert f"{tmp_path / 'three_phases.npy'} has phase label 2" in result.output and "results[" not in result.output


def test_a_damaged_saved_model_is_reported_as_such(tmp_path):
    folder = tmp_path / "model"
    assert run("models", "export", "image_statistics", folder).exit_code == 0
    (folder / "saved_model.pb").write_bytes(b"\x00garbage" * 100)
    result = run("models", "show", folder)
    assert result.exit_code == 2 and "is not a readable SavedModel" in result.output
    assert "disk space" not in result.output


def test_show_of_a_model_without_signatures_is_an_error(tmp_path):
    module = tf.Module()
    module.value = tf.Variable(1.0)
    tf.saved_model.save(module, str(tmp_path / "bare"))
    result = run("models", "show", tmp_path / "bare")
    assert result.exit_code == 2 and "is a SavedModel without signatures" in result.output


def test_an_export_error_names_the_folder_given(tmp_path, monkeypatch):
    def full_disk(module, directory, signatures):
        raise OSError(28, "No space left on device", directory + "/variables/variables.data-00000-of-00001")

    monkeypatch.setattr(tf.saved_model, "save", full_disk)
    result = run("models", "export", "image_statistics", tmp_path / "model")
    assert result.exit_code == 2
    assert f"writing the SavedModel failed (No space left on device): {str(tmp_path / 'model')!r}" in result.output
    assert not list(tmp_path.iterdir())  # no staging folder left
