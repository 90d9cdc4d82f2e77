"""Differentiable microstructure descriptors of batches of 2D slices, and their registry."""

from mcrgpu.mcr.descriptors.base import Descriptor, DescriptorSettings
from mcrgpu.mcr.descriptors.correlations import Correlations, half_plane_shifts
from mcrgpu.mcr.descriptors.fft_correlations import FFTCorrelations
from mcrgpu.mcr.descriptors.gram_matrices import GramMatrices
from mcrgpu.mcr.descriptors.lineal_path import LinealPath
from mcrgpu.mcr.descriptors.registry import DESCRIPTORS, get_descriptor, known_descriptors
from mcrgpu.mcr.descriptors.two_point_correlations import TwoPointCorrelations
from mcrgpu.mcr.descriptors.variation import Variation
from mcrgpu.mcr.descriptors.volume_fractions import VolumeFractions

__all__ = [
    "DescriptorSettings",
    "Descriptor",
    "VolumeFractions",
    "FFTCorrelations",
    "Correlations",
    "TwoPointCorrelations",
    "Variation",
    "LinealPath",
    "GramMatrices",
    "DESCRIPTORS",
    "get_descriptor",
    "known_descriptors",
    "half_plane_shifts",
]
