"""``mcrgpu gpus``: show which devices, strategy and precision the GPU options give."""

import json

import click

from mcrgpu.cli.options import McrCommand, command_strategy, gpu_options

__all__ = ["gpus"]


@click.command(cls=McrCommand, epilog="Examples: mcrgpu gpus --cpu_devices 2 ; mcrgpu gpus --gpu_ids 0 1 --json")
@gpu_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def gpus(gpu_config, as_json: bool) -> None:
    """Set up devices as the other commands would and report the result."""
    from mcrgpu.gpu_manager import describe, format_report

    strategy = command_strategy(gpu_config)
    report = describe(strategy, gpu_config)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else format_report(report))
