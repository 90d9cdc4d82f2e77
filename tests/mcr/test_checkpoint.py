"""Checkpoints: a stopped reconstruction resumed from its checkpoint ends where the uninterrupted run ends."""

import numpy as np
import pytest

from mcrgpu.errors import FileFormatError, InvalidInputError
from mcrgpu.mcr.characterization import characterize
from mcrgpu.mcr.checkpoint import load_resume_point
from mcrgpu.mcr.convergence import ConvergenceData, load_convergence
from mcrgpu.mcr.dmcr import DMCR
from mcrgpu.mcr.synthetic import gaussian_random_structure


class Crash(Exception):
    """Stands for a process killed without warning (SIGKILL): nothing runs after it."""


@pytest.fixture(scope="module")
def target():
    structure = gaussian_random_structure((32, 32), volume_fractions=(0.6, 0.4), correlation_length=2.0, seed=3)
    return characterize(structure, ["FFTCorrelations"], limit_to=4, source="in/sample.npy")


def stop_at(monkeypatch, evaluation, error=KeyboardInterrupt):
    """Make the history raise ``error`` right after recording ``evaluation`` (once)."""
    record = ConvergenceData.record
    fired = []

    def record_then_stop(self, loss, *args, **kwargs):
        record(self, loss, *args, **kwargs)
        if self.n_evaluations == evaluation and not fired:
            fired.append(True)
            raise error

    monkeypatch.setattr(ConvergenceData, "record", record_then_stop)


def run(tmp_path, target, shape=(32, 32), resume_from=None, **settings):
    settings = {"max_iter": 24, "seed": 0, "convergence_data_steps": 4, **settings}
    dmcr = DMCR(list(target.descriptors), save_to=tmp_path, **settings)
    history, result = dmcr.reconstruct(target, shape, resume_from=resume_from)
    return dmcr, history, result


@pytest.mark.parametrize("optimizer_type, extra", [
    ("LBFGSB", {}),
    ("Adam", {"learning_rate": 0.05}),
    ("LBFGSB", {"greedy": True, "batch_size": 3}),
])
@pytest.mark.slow
def test_a_run_resumed_from_its_checkpoint_ends_as_the_uninterrupted_run(target, tmp_path, monkeypatch,
                                                                         optimizer_type, extra):
    shape = (8, 16, 16) if extra.get("greedy") else (32, 32)
    _, straight, straight_result = run(tmp_path / "straight", target, shape, optimizer_type=optimizer_type, **extra)
    stop_at(monkeypatch, 9)
    dmcr, stopped, _ = run(tmp_path / "resumed", target, shape, optimizer_type=optimizer_type, **extra)
    assert stopped.interrupted and 9 <= stopped.n_evaluations < 24
    checkpoint = dmcr.run_files(target).checkpoint
    assert checkpoint.is_file()
    _, resumed, result = run(tmp_path / "resumed", target, shape, resume_from=checkpoint,
                             optimizer_type=optimizer_type, **extra)
    assert resumed.n_evaluations == straight.n_evaluations
    np.testing.assert_allclose(resumed.losses, straight.losses, rtol=1e-5)
    assert resumed.best_loss == pytest.approx(straight.best_loss, rel=1e-5)
    assert np.array_equal(result.labels, straight_result.labels)
    assert sorted(resumed.snapshots) == sorted(straight.snapshots)  # the earlier ones from the snapshot folder
    assert not checkpoint.exists() and not list((tmp_path / "resumed").glob(".*snapshots"))  # finished


@pytest.mark.slow
def test_periodic_checkpoints_lose_at_most_n_evaluations_to_a_kill(target, tmp_path, monkeypatch):
    _, straight, _ = run(tmp_path / "straight", target)
    stop_at(monkeypatch, 13, Crash)
    with pytest.raises(Crash):
        run(tmp_path / "killed", target, checkpoint_every=5)
    dmcr = DMCR(["FFTCorrelations"], save_to=tmp_path / "killed")
    kept = load_resume_point(dmcr.run_files(target).checkpoint)
    assert kept.history.n_evaluations == 10 and kept.stage_evaluations == 10
    _, resumed, _ = run(tmp_path / "killed", target, checkpoint_every=5, resume_from=dmcr.run_files(target).checkpoint)
    np.testing.assert_allclose(resumed.losses, straight.losses, rtol=1e-5)


@pytest.mark.slow
def test_a_multigrid_run_resumes_in_its_stage_without_redoing_the_coarse_ones(tmp_path, monkeypatch):
    structure = gaussian_random_structure((32, 32), volume_fractions=(0.6, 0.4), correlation_length=2.0, seed=3)
    target = characterize(structure, ["Correlations"], limit_to=4)
    settings = {"use_multigrid_reconstruction": True, "max_iter": 8}
    _, straight, _ = run(tmp_path / "straight", target, **settings)
    assert straight.stages == sorted(straight.stages, reverse=True) and straight.stages[0] > 0
    first_fine = straight.stages.index(0)
    stop_at(monkeypatch, first_fine + 5)
    dmcr, stopped, _ = run(tmp_path / "resumed", target, **settings)
    checkpoint = load_resume_point(dmcr.run_files(target).checkpoint)
    assert checkpoint.stage == 0 and checkpoint.stage_evaluations == stopped.n_evaluations - first_fine
    _, resumed, _ = run(tmp_path / "resumed", target, resume_from=dmcr.run_files(target).checkpoint, **settings)
    assert resumed.stages == straight.stages  # the coarse stages were not run again
    np.testing.assert_allclose(resumed.losses, straight.losses, rtol=1e-5)


def test_resuming_needs_the_stored_settings_and_target_unless_overridden(target, tmp_path, monkeypatch):
    stop_at(monkeypatch, 6)
    dmcr, _, _ = run(tmp_path, target, max_iter=20)
    path = dmcr.run_files(target).checkpoint
    with pytest.raises(InvalidInputError, match=r"other settings \(max_iter 20 there, 30 here\).*override"):
        run(tmp_path, target, max_iter=30, resume_from=path)
    other = characterize(gaussian_random_structure((32, 32), volume_fractions=(0.5, 0.5), seed=1),
                         ["FFTCorrelations"], limit_to=4)
    with pytest.raises(InvalidInputError, match="made for another target"):
        run(tmp_path, other, max_iter=20, resume_from=path)
    with pytest.raises(InvalidInputError, match=r"shape \[32, 32\] there, \[16, 16\] here"):
        run(tmp_path, target, (16, 16), max_iter=20, resume_from=path)
    resumed = DMCR(["FFTCorrelations"], max_iter=30, seed=0, convergence_data_steps=4, save_to=tmp_path)
    history, _ = resumed.reconstruct(target, (32, 32), resume_from=path, override_settings=True)
    assert history.n_evaluations == 30  # the larger budget, counted from the run's start


def test_a_finished_run_continues_from_its_convergence_file_keeping_the_best_state(target, tmp_path):
    dmcr, first, _ = run(tmp_path, target, max_iter=10)
    path = dmcr.run_files(target).convergence
    saved = load_convergence(path)
    _, resumed, _ = run(tmp_path, target, max_iter=10, resume_from=path)
    assert resumed.n_evaluations == 20 and resumed.losses[:10] == first.losses
    assert resumed.best_loss <= first.best_loss == saved.best_loss


def test_a_corrupt_or_foreign_resume_file_is_refused_in_one_line(target, tmp_path):
    (tmp_path / "bad_checkpoint.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(FileFormatError, match="not a readable mcrgpu checkpoint or convergence history"):
        run(tmp_path, target, resume_from=tmp_path / "bad_checkpoint.npz")
