"""The settings of a reconstruction (MCRpy's names and defaults), validated and stored with its results."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mcrgpu.errors import InvalidInputError
from mcrgpu.mcr.lbfgs import PAIR_PRECISIONS
from mcrgpu.mcr.descriptors import get_descriptor
from mcrgpu.mcr.losses import LossSettings, default_weights
from mcrgpu.mcr.optimizers import OPTIMIZER_TYPES

__all__ = ["ReconstructionSettings", "MULTIGRID_BETTER", "MULTIGRID_MIN_VOXELS", "XLA_FASTER", "XLA_MIN_VOXELS"]

XLA_FASTER = frozenset({"Correlations"})
"""Descriptors whose loss ran about 2x faster per evaluation with XLA (``jit_compile``) on 2 CPU
cores: Correlations + Variation 1.27 -> 0.64 s at 64^3, 11.9 -> 5.8 s at 128^3. FFTCorrelations +
Variation was slower at 128^3 (0.27 -> 0.34 s); the others were not measured. With Variation and
VolumeFractions beside them (cheap either way) XLA stays on; with any other descriptor it is off."""
_ALONGSIDE = frozenset({"Variation", "VolumeFractions"})
"""Descriptors that leave both defaults (XLA, multigrid) as the main descriptor decides them."""
XLA_MIN_VOXELS = 48**3
"""Fields of fewer voxels run without XLA by default: its compilation (about 3 s) costs about what
it saves there (Correlations + Variation, wall time plain / XLA: 16^3, 20 evaluations, 2.2 / 5.1 s;
32^3, 200 evaluations, 20.6 / 22.4 s; 2D 128x128, 200 evaluations, 7.8 / 7.5 s), and saves more
above (48^3, 100 evaluations, 33.8 / 30.0 s; 64^3 151.8 / 67.7 s; 2D 512x512 70.6 / 44.4 s)."""

MULTIGRID_BETTER = frozenset({"FFTCorrelations"})
"""Descriptors whose volumes reached a lower loss coarse to fine than at full resolution alone, at
the same wall time from 64^3 on and at the end of the default 500 evaluations per stage
(FFTCorrelations + Variation from a 64x64 micrograph, 2 CPU cores: 64^3 0.0035 against 0.0061 in
21.7 against 17.5 s; 128^3 0.0068 against 0.0112 in 167 against 128 s, and 0.018 against 0.045
after 60 s). Correlations was not measured coarse to fine in 3D, nor anything in 2D."""
MULTIGRID_MIN_VOXELS = 64**3
"""Smaller volumes run at full resolution only by default (32^3: 0.0021 against 0.0059, but in 8.9
against 5.1 s, the coarse stages' set-up costing more than the fine stage)."""


@dataclass(frozen=True)
class ReconstructionSettings:
    """Everything that decides a reconstruction, validated, saved with the results (JSON)."""

    descriptor_types: tuple[str, ...] = ("Correlations",)
    descriptor_weights: tuple[float, ...] | None = None
    loss_type: str = "MSE"
    optimizer_type: str = "LBFGSB"
    max_iter: int = 500
    tolerance: float = 1e-10
    lbfgs_memory: int = 10
    lbfgs_precision: str = "float32"
    learning_rate: float = 0.01
    beta_1: float = 0.9
    beta_2: float = 0.999
    rho: float = 0.9
    momentum: float = 0.0
    use_multigrid_reconstruction: bool | None = None
    minimal_resolution: int | None = None
    use_multiphase: bool | None = None
    greedy: bool = False
    batch_size: int = 1
    slice_batch_size: int | None = None
    use_distributed_loss: bool | None = None
    jit_compile: bool | None = None
    convergence_data_steps: int | None = 10
    outfile_data_steps: int | None = None
    checkpoint_every: int | None = None
    oor_multiplier: float = 1000.0
    phase_sum_multiplier: float = 1000.0
    full_level_windows: float = 8.0
    two_point_level_windows: float = 4.0
    two_point_polish: bool = True
    seed: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.descriptor_types, str) or not self.descriptor_types:
            raise InvalidInputError(
                f"descriptor_types must be a non-empty list of names; received {self.descriptor_types!r}"
            )
        object.__setattr__(self, "descriptor_types", tuple(self.descriptor_types))
        for name in self.descriptor_types:
            get_descriptor(name)  # raises with the list of known names
        weights = self.descriptor_weights
        if weights is None:
            weights = default_weights(self.descriptor_types)
        weights = tuple(float(w) for w in weights)
        if len(weights) != len(self.descriptor_types) or not all(np.isfinite(weights)):
            raise InvalidInputError(
                f"descriptor_weights must be {len(self.descriptor_types)} finite number(s), one per "
                f"descriptor type; received {list(weights)}"
            )
        object.__setattr__(self, "descriptor_weights", weights)
        self.loss_settings()
        if self.optimizer_type not in OPTIMIZER_TYPES:
            raise InvalidInputError(
                f"Unknown optimizer_type {self.optimizer_type!r}; expected one of {', '.join(OPTIMIZER_TYPES)}"
            )
        if self.lbfgs_precision not in PAIR_PRECISIONS:
            raise InvalidInputError(f"Unknown lbfgs_precision {self.lbfgs_precision!r}; expected one of "
                                    f"{', '.join(PAIR_PRECISIONS)}")
        for name in ("max_iter", "batch_size", "lbfgs_memory"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise InvalidInputError(f"{name} must be an integer >= 1; received {getattr(self, name)!r}")
        for name in ("slice_batch_size", "convergence_data_steps", "outfile_data_steps", "checkpoint_every",
                     "minimal_resolution"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InvalidInputError(f"{name} must be None or an integer >= 1; received {value!r}")
        if not (self.tolerance >= 0 and self.learning_rate > 0):
            raise InvalidInputError(
                f"tolerance must be >= 0 and learning_rate > 0; received {self.tolerance!r}, {self.learning_rate!r}"
            )

    def xla_for(self, voxels: int) -> bool:
        """Whether the loss of a field of ``voxels`` runs XLA-compiled: ``jit_compile`` if given,
        else on where it measured faster (:data:`XLA_FASTER` descriptors, at least
        :data:`XLA_MIN_VOXELS` voxels)."""
        if self.jit_compile is not None:
            return bool(self.jit_compile)
        names = set(self.descriptor_types)
        return voxels >= XLA_MIN_VOXELS and bool(names & XLA_FASTER) and names <= XLA_FASTER | _ALONGSIDE

    def multigrid_for(self, shape) -> bool:
        """Whether a field of ``shape`` is solved coarse to fine: ``use_multigrid_reconstruction`` if
        given, else on where it measured better (volumes of at least :data:`MULTIGRID_MIN_VOXELS`
        with :data:`MULTIGRID_BETTER` descriptors, Variation and VolumeFractions beside them)."""
        if self.use_multigrid_reconstruction is not None:
            return bool(self.use_multigrid_reconstruction)
        names = set(self.descriptor_types)
        return (len(shape) == 3 and int(np.prod(shape)) >= MULTIGRID_MIN_VOXELS and bool(names & MULTIGRID_BETTER)
                and names <= MULTIGRID_BETTER | _ALONGSIDE)

    def loss_settings(self) -> LossSettings:
        return LossSettings(self.loss_type, self.oor_multiplier, self.phase_sum_multiplier,
                            self.full_level_windows, self.two_point_level_windows)
