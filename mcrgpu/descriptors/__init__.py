"""Differentiable microstructure descriptors of batches of 2D slices, and their registry."""

from mcrgpu.descriptors.base import Descriptor, DescriptorSettings
from mcrgpu.descriptors.correlations import Correlations, half_plane_shifts
from mcrgpu.descriptors.fft_correlations import FFTCorrelations
from mcrgpu.descriptors.lineal_path import LinealPath
from mcrgpu.descriptors.registry import DESCRIPTORS, get_descriptor, known_descriptors
from mcrgpu.descriptors.two_point_correlations import TwoPointCorrelations
from mcrgpu.descriptors.variation import Variation
from mcrgpu.descriptors.volume_fractions import VolumeFractions

__all__ = [
    "DescriptorSettings",
    "Descriptor",
    "VolumeFractions",
    "FFTCorrelations",
    "Correlations",
    "TwoPointCorrelations",
    "Variation",
    "LinealPath",
    "DESCRIPTORS",
    "get_descriptor",
    "known_descriptors",
    "half_plane_shifts",
]
