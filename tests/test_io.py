"""Tests for mcrgpu.io: atomic writes and npz files."""

import numpy as np
import pytest

from mcrgpu.errors import InvalidInputError
from mcrgpu.io import atomic_save_npz, atomic_write, atomic_write_text


def test_atomic_write_failure_leaves_target_untouched(tmp_path):
    target = tmp_path / "result.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target) as handle:
            handle.write(b"new, half written")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.bin"]


def test_atomic_write_creates_parents_and_replaces(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    with atomic_write(target, "w") as handle:
        handle.write("µ-structure\n")
    assert target.read_text(encoding="utf-8") == "µ-structure\n"
    assert atomic_write_text(target, "second") == target
    assert target.read_text(encoding="utf-8") == "second"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]
    with pytest.raises(InvalidInputError, match="mode must be one of"):
        with atomic_write(target, "a"):
            pass
    with pytest.raises(InvalidInputError, match="text must be a str, got bytes"):
        atomic_write_text(target, b"bytes")


def test_atomic_save_npz_keeps_exact_path(tmp_path):
    for name in ("history.npz", "history"):
        path = atomic_save_npz(tmp_path / name, loss=np.arange(3.0), path=np.ones(2))
        assert path == tmp_path / name and path.is_file()
        with np.load(path, allow_pickle=False) as data:
            np.testing.assert_array_equal(data["loss"], [0.0, 1.0, 2.0])
            np.testing.assert_array_equal(data["path"], [1.0, 1.0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history", "history.npz"]
    with pytest.raises(InvalidInputError, match="reserved by numpy.savez"):
        atomic_save_npz(tmp_path / "x.npz", file=np.ones(1))
    with pytest.raises(InvalidInputError, match="hold Python objects"):
        atomic_save_npz(tmp_path / "x.npz", bad=np.array([None]))
    assert not (tmp_path / "x.npz").exists()
