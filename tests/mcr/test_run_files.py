"""RunFiles: every file of a run is named in one place, and names made from user input stay in the folder."""

from pathlib import Path

import pytest

from mcrgpu.errors import InvalidInputError
from mcrgpu.mcr.run_files import MAX_STEM_LENGTH, RunFiles, run_name


def test_every_file_of_a_run_is_in_its_folder_under_its_stem():
    files = RunFiles.for_input("out", "data/ms.npy", "run1")
    assert files == RunFiles(Path("out"), "ms_run1")  # a string folder becomes a Path: equal and hashable
    names = {files.characterization: "ms_run1_characterization.npz",
             files.characterization_figure: "ms_run1_characterization.png",
             files.reconstruction: "ms_run1_reconstruction.npy",
             files.convergence: "ms_run1_convergence.npz",
             files.checkpoint: "ms_run1_checkpoint.npz",
             files.snapshots: ".ms_run1_snapshots",
             files.lock: ".ms_run1.lock",
             files.intermediate(1, 40): "ms_run1_stage_1_iteration_000040.npz"}
    assert len(names) == 8  # all different
    for path, name in names.items():
        assert path == Path("out") / name


def test_a_characterization_names_the_run_it_came_from():
    assert run_name("results/ms.v2_characterization.npz") == "ms.v2"
    assert run_name("ms.npy") == "ms"
    assert RunFiles.for_characterization("r", "results/ms.v2_characterization.npz", "3d").stem == "ms.v2_3d"
    # the same name as the run that wrote it (characterize or match on ms.v2.npy)
    assert RunFiles.for_characterization("r", "ms.v2_characterization.npz").reconstruction == \
        RunFiles.for_input("r", "ms.v2.npy").reconstruction
    with pytest.raises(InvalidInputError, match="'' of input '_characterization.npz' is not a name; rename the file"):
        RunFiles.for_characterization("r", "_characterization.npz")


def test_named_takes_library_names_as_they_are():
    assert RunFiles.named("out", "a", None).stem == "a"
    assert RunFiles.named("out", "a", "b").stem == "a_b"


@pytest.mark.parametrize("path, information, fragment", [
    ("ms.npy", "x/../../escaped", "contains a path separator"),
    ("ms.npy", "..", "contains '..'"),
    ("ms.npy", "a\nb", "contains a control character"),
    ("ms.npy", "", "is empty"),
    ("ms\t1.npy", None, "The name 'ms\\t1' of input 'ms\\t1.npy' contains a control character"),
    ("ms.npy", "x" * MAX_STEM_LENGTH, f"at most {MAX_STEM_LENGTH} fit"),
])
def test_names_from_user_input_that_would_leave_the_folder_or_not_fit_are_refused(path, information, fragment):
    with pytest.raises(InvalidInputError) as error:
        RunFiles.for_input("out", path, information)
    assert fragment in str(error.value)


def test_the_longest_name_allowed_fits_a_file_system_with_every_suffix():
    files = RunFiles.for_input("out", "m" * MAX_STEM_LENGTH + ".npy")
    longest = max([files.characterization, files.characterization_figure, files.reconstruction, files.convergence,
                   files.checkpoint, files.snapshots, files.lock], key=lambda path: len(path.name))
    assert len(f".{longest.name}.0123456789ab.tmp".encode()) <= 255  # mcrgpu.io's temporary name too
    with pytest.raises(InvalidInputError, match="bytes long"):
        RunFiles.for_input("out", "m" * (MAX_STEM_LENGTH + 1) + ".npy")
