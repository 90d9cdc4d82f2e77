"""Phase-label microstructures and their indicator fields."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from mcrgpu.errors import InvalidInputError

__all__ = ["Microstructure"]


def _short(values: Sequence[object], limit: int = 8) -> str:
    """Render at most ``limit`` values of a sequence for an error message."""
    shown = ", ".join(str(v) for v in list(values)[:limit])
    return f"[{shown}, ...]" if len(values) > limit else f"[{shown}]"


def _integral_array(labels: ArrayLike, name: str) -> np.ndarray:
    """Return ``labels`` as an integer ndarray, or raise InvalidInputError saying why it is not one."""
    try:
        array = np.asarray(labels)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"{name} must be an integer array of phase labels; it could not be converted ({exc})."
        ) from exc
    if array.dtype == np.bool_:
        return array.astype(np.int64)
    if np.issubdtype(array.dtype, np.integer):
        return array
    if np.issubdtype(array.dtype, np.floating):
        if array.size and not np.all(np.isfinite(array)):
            raise InvalidInputError(
                f"{name} contains NaN or infinite values; phase labels must be finite integers."
            )
        if array.size and not np.all(array == np.round(array)):
            raise InvalidInputError(
                f"{name} has non-integral values (dtype {array.dtype}, e.g. "
                f"{float(array[array != np.round(array)].flat[0])!r}); phase labels must be integers: "
                "segment a grey image first, e.g. by thresholding (labels = image >= threshold)."
            )
        return array.astype(np.int64)
    raise InvalidInputError(
        f"{name} must be an integer, bool or integral float array of phase labels, got dtype {array.dtype}."
    )


def _check_phase_values(phase_values: Sequence[int]) -> tuple[int, ...]:
    """Validate user-given phase values: at least two distinct integers."""
    if isinstance(phase_values, (str, bytes)) or not isinstance(phase_values, Sequence | np.ndarray):
        raise InvalidInputError(
            f"phase_values must be a sequence of distinct integers, got {phase_values!r}."
        )
    values = list(phase_values)
    if not all(isinstance(v, Integral) and not isinstance(v, bool) for v in values):
        raise InvalidInputError(
            f"phase_values must contain integers only, got {_short(values)}."
        )
    result = tuple(int(v) for v in values)
    if len(result) < 2 or len(set(result)) != len(result):
        raise InvalidInputError(
            f"phase_values must hold at least two distinct integers, got {_short(result)}."
        )
    return result


class Microstructure:
    """A 2D or 3D microstructure given by integer phase labels 0..K-1.

    Parameters
    ----------
    labels : array_like
        Phase labels, shape (H, W) or (D, H, W). Integer, bool, or float arrays whose values are
        all integral (e.g. 0.0/1.0) are accepted. If ``phase_values`` is None and the labels are
        not 0..K-1 (e.g. 0/255 or 1, 2, 5), they are mapped to 0..K-1 in sorted order and the
        original values are kept in :attr:`phase_values`.
    phase_values : sequence of int, optional
        The original value of each phase, for writing files back. When given, ``labels`` must
        already be indices 0..K-1 with ``K = len(phase_values)``; K is then taken from
        ``phase_values`` even if some phase does not occur in ``labels`` (as can happen after a
        reconstruction).

    Attributes
    ----------
    labels : numpy.ndarray
        Read-only int32 array of phase indices 0..K-1, a copy of the input.
    phase_values : tuple of int
        The original value of each phase, length K.

    Raises
    ------
    InvalidInputError
        If ``labels`` is empty, not 2D/3D, not integral (fractional floats, NaN, inf), has a
        single phase, or does not match ``phase_values``.

    Examples
    --------
    >>> ms = Microstructure([[0, 255], [255, 255]])
    >>> ms.phase_values, ms.volume_fractions().tolist()
    ((0, 255), [0.25, 0.75])
    """

    def __init__(self, labels: ArrayLike, *, phase_values: Sequence[int] | None = None) -> None:
        array = _integral_array(labels, "labels")
        if array.size == 0:
            raise InvalidInputError(f"labels must not be empty, got shape {array.shape}.")
        if array.ndim not in (2, 3):
            raise InvalidInputError(
                f"labels must be 2D (H, W) or 3D (D, H, W), got {array.ndim}D with shape {array.shape}."
            )
        present = np.unique(array)
        if phase_values is None:
            if present.size < 2:
                raise InvalidInputError(
                    f"labels has a single phase (every value is {present[0]}); a microstructure "
                    "needs at least two phases."
                )
            values = tuple(int(v) for v in present)
            if values == tuple(range(len(values))):
                indices = array.astype(np.int32)
            else:
                indices = np.searchsorted(present, array).astype(np.int32)
        else:
            values = _check_phase_values(phase_values)
            if present[0] < 0 or present[-1] >= len(values):
                raise InvalidInputError(
                    f"labels must be phase indices 0..{len(values) - 1} when phase_values "
                    f"{_short(values)} is given, got values {_short(present.tolist())}."
                )
            indices = array.astype(np.int32)
        indices.setflags(write=False)
        self._labels = indices
        self._phase_values = values

    @property
    def labels(self) -> np.ndarray:
        """Read-only int32 array of phase indices 0..K-1."""
        return self._labels

    @property
    def phase_values(self) -> tuple[int, ...]:
        """Original label value of each phase, length K."""
        return self._phase_values

    @property
    def n_phases(self) -> int:
        """Number of phases K."""
        return len(self._phase_values)

    @property
    def shape(self) -> tuple[int, ...]:
        """Spatial shape, (H, W) or (D, H, W)."""
        return self._labels.shape

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions, 2 or 3."""
        return self._labels.ndim

    @property
    def is_3d(self) -> bool:
        """Whether the microstructure is a volume."""
        return self._labels.ndim == 3

    def volume_fractions(self) -> np.ndarray:
        """Return the volume fraction of each phase.

        Returns
        -------
        numpy.ndarray
            Shape (K,), float64, summing to 1.
        """
        counts = np.bincount(self._labels.ravel(), minlength=self.n_phases)
        return counts.astype(np.float64) / self._labels.size

    def indicator(self, *, multiphase: bool | None = None, dtype: DTypeLike = "float32") -> np.ndarray:
        """Return the indicator field the optimiser works on.

        Parameters
        ----------
        multiphase : bool, optional
            True: one channel per phase (C = K). False: only the indicator of phase 1 (C = 1),
            valid for two phases only. None (default): multiphase if K > 2.
        dtype : numpy dtype, optional
            A floating dtype, float32 by default.

        Returns
        -------
        numpy.ndarray
            Shape ``(*spatial, C)``, values 0 or 1.

        Raises
        ------
        InvalidInputError
            If ``multiphase`` is False with more than two phases, or ``dtype`` is not floating.
        """
        try:
            out_dtype = np.dtype(dtype)
        except TypeError as exc:
            raise InvalidInputError(
                f"dtype must be a floating dtype such as 'float32', got {dtype!r}."
            ) from exc
        if not np.issubdtype(out_dtype, np.floating):
            raise InvalidInputError(f"dtype must be a floating dtype such as 'float32', got {out_dtype}.")
        if multiphase is None:
            multiphase = self.n_phases > 2
        if multiphase:
            return (self._labels[..., np.newaxis] == np.arange(self.n_phases)).astype(out_dtype)
        if self.n_phases > 2:
            raise InvalidInputError(
                f"multiphase=False needs a two-phase microstructure, this one has {self.n_phases} "
                "phases; use multiphase=True or None."
            )
        return (self._labels == 1)[..., np.newaxis].astype(out_dtype)

    @classmethod
    def from_indicator(cls, field: ArrayLike, *, phase_values: Sequence[int] | None = None) -> Microstructure:
        """Build a microstructure from an indicator field.

        Parameters
        ----------
        field : array_like
            Shape (H, W, C) or (D, H, W, C), e.g. an optimised field (a tensor is accepted).
            C = 1: the indicator of phase 1, labels are ``field >= 0.5``. C > 1: one channel per
            phase, labels are the argmax over channels (ties go to the lower phase).
        phase_values : sequence of int, optional
            Original value of each phase, length 2 if C = 1, else C. Default 0..K-1.

        Returns
        -------
        Microstructure
            With K = 2 (C = 1) or K = C phases, even if a phase does not occur.

        Raises
        ------
        InvalidInputError
            If ``field`` is not 3D/4D with a channel axis, not numeric, or holds NaN/inf.
        """
        array = np.asarray(field)
        if array.ndim not in (3, 4) or array.size == 0:
            raise InvalidInputError(
                "field must have shape (H, W, C) or (D, H, W, C) with a channel axis, "
                f"got shape {array.shape}."
            )
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise InvalidInputError(f"field must be numeric, got dtype {array.dtype}.")
        if np.issubdtype(array.dtype, np.inexact) and not np.all(np.isfinite(array)):
            raise InvalidInputError(
                "field contains NaN or infinite values; an indicator field must be finite."
            )
        channels = array.shape[-1]
        if channels == 1:
            labels = array[..., 0] >= 0.5
        else:
            labels = np.argmax(array, axis=-1)
        n_phases = max(channels, 2)
        if phase_values is None:
            phase_values = tuple(range(n_phases))
        elif len(phase_values) != n_phases:
            raise InvalidInputError(
                f"phase_values must have {n_phases} entries for a field with {channels} channel(s), "
                f"got {len(phase_values)}: {_short(list(phase_values))}."
            )
        return cls(labels, phase_values=phase_values)

    def original_labels(self) -> np.ndarray:
        """Return the labels mapped back to :attr:`phase_values` (int64)."""
        return np.asarray(self._phase_values, dtype=np.int64)[self._labels]

    def __repr__(self) -> str:
        fractions = ", ".join(f"{f:.4g}" for f in self.volume_fractions())
        return (
            f"Microstructure(shape={self.shape}, n_phases={self.n_phases}, "
            f"phase_values={self.phase_values}, volume_fractions=[{fractions}])"
        )
