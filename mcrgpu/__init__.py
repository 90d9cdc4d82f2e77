"""mcrgpu: microstructure characterization and reconstruction on TensorFlow distribution strategies."""

from mcrgpu._version import __version__
from mcrgpu.errors import DeviceConfigError, FileFormatError, InvalidInputError, McrgpuError
from mcrgpu.gpu_manager import GPUConfig, describe, print_gpu_status, setup_gpus

__all__ = [
    "__version__",
    "McrgpuError",
    "InvalidInputError",
    "DeviceConfigError",
    "FileFormatError",
    "GPUConfig",
    "setup_gpus",
    "describe",
    "print_gpu_status",
]
