"""mcrgpu: microstructure characterization and reconstruction on TensorFlow distribution strategies."""

from mcrgpu._version import __version__

# Names load on first use (PEP 562) so that ``import mcrgpu`` (and the command line's --help and
# --version) does not import TensorFlow.
_LAZY = {
    "Characterization": "mcrgpu.mcr.characterization",
    "characterize": "mcrgpu.mcr.characterization",
    "combine_axes": "mcrgpu.mcr.characterization",
    "compare": "mcrgpu.mcr.compare",
    "interpolate": "mcrgpu.mcr.interpolation",
    "smooth": "mcrgpu.mcr.smoothing",
    "match": "mcrgpu.mcr.matching",
    "MatchResult": "mcrgpu.mcr.matching",
    "load_characterization": "mcrgpu.mcr.characterization_files",
    "save_characterization": "mcrgpu.mcr.characterization_files",
    "ConvergenceData": "mcrgpu.mcr.convergence",
    "load_convergence": "mcrgpu.mcr.convergence",
    "DescriptorSettings": "mcrgpu.mcr.descriptors",
    "get_descriptor": "mcrgpu.mcr.descriptors",
    "known_descriptors": "mcrgpu.mcr.descriptors",
    "DMCR": "mcrgpu.mcr.dmcr",
    "ReconstructionSettings": "mcrgpu.mcr.reconstruction_settings",
    "DeviceConfigError": "mcrgpu.errors",
    "FileFormatError": "mcrgpu.errors",
    "InvalidInputError": "mcrgpu.errors",
    "McrgpuError": "mcrgpu.errors",
    "gaussian_random_structure": "mcrgpu.mcr.synthetic",
    "GPUConfig": "mcrgpu.gpu_manager",
    "describe": "mcrgpu.gpu_manager",
    "print_gpu_status": "mcrgpu.gpu_manager",
    "setup_gpus": "mcrgpu.gpu_manager",
    "load_microstructure": "mcrgpu.mcr.microstructure_io",
    "save_microstructure": "mcrgpu.mcr.microstructure_io",
    "Microstructure": "mcrgpu.mcr.microstructure",
}

__all__ = [
    "__version__",
    "Characterization",
    "characterize",
    "combine_axes",
    "compare",
    "interpolate",
    "smooth",
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


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mcrgpu' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
