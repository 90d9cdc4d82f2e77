"""mcrgpu: microstructure characterization and reconstruction on TensorFlow distribution strategies."""

from mcrgpu._version import __version__
from mcrgpu.mcr.characterization import Characterization, characterize
from mcrgpu.mcr.compare import compare
from mcrgpu.mcr.matching import MatchResult, match
from mcrgpu.mcr.characterization_files import load_characterization, save_characterization
from mcrgpu.mcr.convergence import ConvergenceData, load_convergence
from mcrgpu.mcr.descriptors import DescriptorSettings, get_descriptor, known_descriptors
from mcrgpu.mcr.dmcr import DMCR, ReconstructionSettings
from mcrgpu.errors import DeviceConfigError, FileFormatError, InvalidInputError, McrgpuError
from mcrgpu.mcr.synthetic import gaussian_random_structure
from mcrgpu.gpu_manager import GPUConfig, describe, print_gpu_status, setup_gpus
from mcrgpu.mcr.microstructure_io import load_microstructure, save_microstructure
from mcrgpu.mcr.microstructure import Microstructure

__all__ = [
    "__version__",
    "Characterization",
    "characterize",
    "compare",
    "match",
    "MatchResult",
    "load_characterization",
    "save_characterization",
    "ConvergenceData",
    "load_convergence",
    "DescriptorSettings",
    "get_descriptor",
    "known_descriptors",
    "DMCR",
    "ReconstructionSettings",
    "McrgpuError",
    "InvalidInputError",
    "DeviceConfigError",
    "FileFormatError",
    "gaussian_random_structure",
    "GPUConfig",
    "setup_gpus",
    "describe",
    "print_gpu_status",
    "load_microstructure",
    "save_microstructure",
    "Microstructure",
]
