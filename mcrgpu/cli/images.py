"""``mcrgpu images pairs|grid|tiles``: image tasks on SavedModels under the strategy the GPU options build."""

from __future__ import annotations

from typing import Callable

import click

from mcrgpu.cli.options import (POSITIVE_INT, McrCommand, MultiValueOption, command_strategy, compose, exit_on_signals,
                                gpu_options, progress_option)

__all__ = ["images"]

EXIT_CODES = """Exit codes: 0 every item done (or skipped as done before), 3 some items failed (see the
manifest), 2 usage errors (nothing run), 130 or 143 interrupted by Ctrl+C or SIGTERM (finished items kept;
rerun to go on). A rerun skips items finished by an earlier run with the same model, inputs and options;
other results in the way are an error unless --overwrite."""

PAIRS_EPILOG = f"""Examples:

  mcrgpu models export matcher models/matcher

  mcrgpu images pairs --model models/matcher --pairs pairs.txt --visualize --cpu_devices 2

  mcrgpu images pairs --model my_superglue --folders left right --output_names matches0=matches

{EXIT_CODES}
"""

GRID_EPILOG = f"""Examples:

  mcrgpu models export colour_transfer models/colour_transfer

  mcrgpu images grid --model models/colour_transfer --images photos --references styles --samples 3

{EXIT_CODES}
"""


TILES_EPILOG = """Examples:

  mcrgpu models export segment_phases models/segment_phases

  mcrgpu images tiles slide.tif phases.tif --model models/segment_phases --tile_size 1024 --cpu_devices 2

  mcrgpu images tiles ortho.tif smooth.tif --model my_model --stitch blend --overlap 0.25

Exit codes: 0 the output is complete, 3 a band failed (the run stopped there), 2 usage errors (nothing
run), 130 or 143 interrupted by Ctrl+C or SIGTERM (finished bands kept; rerun to go on). A rerun resumes
only a run of the same SOURCE file, model and options; another OUTPUT in the way is an error unless
--overwrite. NaN or infinite values in SOURCE are an error: fill them first.
"""


@click.group("images", context_settings={"help_option_names": ["-h", "--help"]})
def images() -> None:
    """Image tasks: run a SavedModel over many images, resumably, under the GPU options' strategy."""


def task_options(command: Callable) -> Callable:
    """Options every image task shares: the model, batching, fitting images, output and resuming."""
    return compose([
        click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False),
                     help="SavedModel folder (e.g. from `mcrgpu models export`)."),
        click.option("--signature", default="serving_default", show_default=True, help="Signature to run."),
        click.option("--batch_size", type=POSITIVE_INT, default=1, show_default=True,
                     help="Items per device and step (the global batch is this times the devices); "
                          "for a given value results do not depend on the number of devices."),
        click.option("--resize", is_flag=True, help="Resize every image to the model's size (or --size)."),
        click.option("--pad", is_flag=True, help="Pad every image with zeros, below and right, to the model's "
                                                 "size (or --size). Without --resize/--pad images are batched by shape."),
        click.option("--size", type=POSITIVE_INT, nargs=2, default=None, metavar="H W",
                     help="Target size for --resize/--pad when the model accepts any size."),
        click.option("--data_folder", type=click.Path(file_okay=False), default="results", show_default=True,
                     help="Folder for the results and the JSONL manifest."),
        click.option("--overwrite", is_flag=True,
                     help="Redo every item and replace existing outputs (default: skip items an earlier run finished "
                          "with the same model, inputs and options; outputs made otherwise are an error)."),
        progress_option,
    ], command)


def _fit(resize: bool, pad: bool, size) -> tuple[str | None, tuple[int, int] | None]:
    if resize and pad:
        raise click.UsageError("--resize and --pad contradict; give only one")
    if size and not (resize or pad):
        raise click.UsageError("--size applies to --resize or --pad; add one of them")
    return ("resize" if resize else "pad" if pad else None), (tuple(size) if size else None)


def _finish(summary) -> None:
    click.echo(str(summary))
    if summary.exit_code:
        raise click.exceptions.Exit(summary.exit_code)


@images.command("pairs", cls=McrCommand, epilog=PAIRS_EPILOG)
@click.option("--pairs", "pair_list", type=click.Path(dir_okay=False), default=None,
              help="CSV or text file: two image paths per line (relative to the file).")
@click.option("--folders", type=click.Path(file_okay=False), nargs=2, default=None, metavar="DIR0 DIR1",
              help="Pair the images of two folders by file name.")
@click.option("--output_names", cls=MultiValueOption, metavar="KEY=NAME",
              help="The model's names for keypoints0, keypoints1, matches0, match_scores0, "
                   "e.g. --output_names matches0=matches match_scores0=scores.")
@click.option("--visualize", is_flag=True, help="Also write a PNG per pair: both images, matches drawn.")
@task_options
@gpu_options
@exit_on_signals
def pairs_command(pair_list, folders, output_names, visualize, model_dir, signature, batch_size, resize, pad, size,
                  data_folder, overwrite, progress, gpu_config) -> None:
    """Match image pairs with a pair model; one DATA_FOLDER/<image0>__<image1>.npz per pair.

    The model's signature takes image0 and image1 ((B, H, W, C) float32 in [0, 1]) and returns
    keypoints0, keypoints1 ((B, K, 2), x then y), matches0 ((B, K), index into keypoints1 or -1)
    and match_scores0 ((B, K)). --precision does not change a SavedModel: a built-in model takes
    it when exported (mcrgpu models export --precision).
    """
    from mcrgpu.images.pairs import match_pairs, pairs_from_folders, read_pair_list

    if (pair_list is None) == (folders is None):
        raise click.UsageError("Give the pairs either as --pairs FILE or as --folders DIR0 DIR1")
    names = {}
    for text in output_names:
        key, separator, name = text.partition("=")
        if not separator or not key or not name:
            raise click.UsageError(f"--output_names takes KEY=NAME (e.g. matches0=matches); got {text!r}")
        names[key] = name
    mode, fit_size = _fit(resize, pad, size)
    pairs = read_pair_list(pair_list) if pair_list else pairs_from_folders(*folders)
    strategy = command_strategy(gpu_config)
    _finish(match_pairs(pairs, model_dir, output_folder=data_folder, strategy=strategy, signature=signature,
                        output_names=names, visualize=visualize, batch_size=batch_size, size=fit_size, mode=mode,
                        overwrite=overwrite, progress=progress))


@images.command("grid", cls=McrCommand, epilog=GRID_EPILOG)
@click.option("--images", "image_sources", cls=MultiValueOption, required=True, type=click.Path(exists=True),
              help="Image files or folders.")
@click.option("--references", "reference_sources", cls=MultiValueOption, required=True, type=click.Path(exists=True),
              help="Reference image files or folders.")
@click.option("--samples", type=POSITIVE_INT, default=1, show_default=True,
              help="Samples per image and reference (seeds derived from image, reference and sample number).")
@click.option("--seed", type=int, default=0, show_default=True, help="Mixed into every sample's seed.")
@click.option("--output_name", default=None, help="Model output to write (default: its only output, else 'image').")
@task_options
@gpu_options
@exit_on_signals
def grid_command(image_sources, reference_sources, samples, seed, output_name, model_dir, signature, batch_size,
                 resize, pad, size, data_folder, overwrite, progress, gpu_config) -> None:
    """Every image x every reference x --samples through a two-input model.

    The model's signature takes image and reference ((B, H, W, C) float32 in [0, 1]) and seed
    ((B,) int64); results go to DATA_FOLDER/<image>__<reference>__<k>.png for uint8/uint16 image
    outputs, .npy otherwise. --precision does not change a SavedModel: a built-in model takes it
    when exported (mcrgpu models export --precision).
    """
    from mcrgpu.images.grid import run_grid
    from mcrgpu.images.inputs import image_files

    mode, fit_size = _fit(resize, pad, size)
    image_paths = [path for source in image_sources for path in image_files(source, "--images")]
    reference_paths = [path for source in reference_sources for path in image_files(source, "--references")]
    strategy = command_strategy(gpu_config)
    _finish(run_grid(image_paths, reference_paths, model_dir, output_folder=data_folder, samples=samples, seed=seed,
                     output_name=output_name, strategy=strategy, signature=signature, batch_size=batch_size,
                     size=fit_size, mode=mode, overwrite=overwrite, progress=progress))


@images.command("tiles", cls=McrCommand, epilog=TILES_EPILOG)
@click.argument("source", type=click.Path(dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False),
              help="SavedModel folder with one image input (e.g. from `mcrgpu models export segment_phases`).")
@click.option("--signature", default="serving_default", show_default=True, help="Signature to run.")
@click.option("--output_name", default=None, help="Model output to write (default: its only output, else 'image').")
@click.option("--tile_size", type=POSITIVE_INT, default=512, show_default=True,
              help="Edge of a tile's core in input pixels.")
@click.option("--stitch", type=click.Choice(["crop", "blend"]), default="crop", show_default=True,
              help="crop: read each tile with a halo and keep its centre (equals the whole-image output when "
                   "the halo covers the receptive radius); blend: average overlapping tiles with raised-cosine "
                   "weights.")
@click.option("--overlap", type=float, default=0.25, show_default=True,
              help="--stitch blend: neighbouring tiles share this fraction of --tile_size.")
@click.option("--halo", type=click.IntRange(min=0), default=None,
              help="--stitch crop: margin in input pixels (default: the receptive radius the model declares).")
@click.option("--batch_size", type=POSITIVE_INT, default=1, show_default=True,
              help="Tiles per device and step.")
@click.option("--overwrite", is_flag=True,
              help="Start afresh, replacing OUTPUT (default: resume a run of the same SOURCE, model and options; "
                   "anything else in the way is an error).")
@progress_option
@gpu_options
@exit_on_signals
def tiles_command(source, output, model_dir, signature, output_name, tile_size, stitch, overlap, halo, batch_size,
                  overwrite, progress, gpu_config) -> None:
    """Run a one-image model over the raster SOURCE tile by tile; write OUTPUT (.tif or .npy) band by band.

    SOURCE: TIFF/BigTIFF/GeoTIFF (read lazily: memory-mapped, or tile/strip-wise), .npy (memory-mapped),
    PNG/JPEG. OUTPUT has SOURCE's size times the model's output scale, a tiled TIFF (GeoTIFF tags copied)
    or a .npy; it is written as .STEM.partial.SUFFIX beside it and renamed when complete, bands recorded in
    OUTPUT.manifest.jsonl so that a rerun resumes.
    """
    from mcrgpu.images.tiles import run_tiles

    strategy = command_strategy(gpu_config)
    _finish(run_tiles(source, output, model_dir, strategy=strategy, signature=signature, output_name=output_name,
                      tile_size=tile_size, stitch=stitch, overlap=overlap, halo=halo, batch_size=batch_size,
                      overwrite=overwrite, progress=progress))


BIN_EPILOG = f"""Examples:

  mcrgpu models export faces models/faces

  mcrgpu models export image_statistics models/image_statistics

  mcrgpu images bin photos --rules rules.toml --out results/bins.csv --bin_folders results/bins

A rules file (TOML or JSON; model paths relative to it):

\b
  default = "other"
  [models.faces]
  path = "models/faces"
  [models.stats]
  path = "models/image_statistics"
  [[bins]]
  name = "faces"
  when = ["faces.face_count >= 1", "faces.max_confidence > 0.95"]
  [[bins]]
  name = "sharp"
  when = ["stats.sharpness > 500", "stats.entropy between 6 and 8"]
  ratio = 0.5
  rank_by = "stats.sharpness"

{EXIT_CODES}
"""


@images.command("bin", cls=McrCommand, epilog=BIN_EPILOG)
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True), metavar="FILES_OR_DIR...")
@click.option("--rules", "rules_file", required=True, type=click.Path(dir_okay=False),
              help="Rules file (.toml or .json): models, ordered bins of conditions, default bin, ratios.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="CSV to write: image, every scalar model output, bin. Scores and manifests go to "
                   "<OUT stem>_scores/.")
@click.option("--bin_folders", type=click.Path(file_okay=False), default=None,
              help="Also make one folder per bin here, with a link to each of its images.")
@click.option("--copy", is_flag=True, help="Copy the images into --bin_folders instead of linking them.")
@click.option("--batch_size", type=POSITIVE_INT, default=1, show_default=True,
              help="Images per device and step (the global batch is this times the devices).")
@click.option("--overwrite", is_flag=True,
              help="Score again every image and replace --out (default: reuse scores made by the same model files "
                   "from the same image files; scores made otherwise are an error).")
@progress_option
@gpu_options
@exit_on_signals
def bin_command(sources, rules_file, out, bin_folders, copy, batch_size, overwrite, progress, gpu_config) -> None:
    """Score images with several SavedModels and sort them into bins by rules over their outputs.

    Every model of the rules file is loaded once and run over all images; then each image goes to
    the first bin whose conditions all hold (>, >=, <, <=, ==, between ... and ...; contains "..." or
    matches "..." on the text an OCR model reads) and that still has room under its ratio, else to
    the default bin. An OCR model ([models.ocr] detector = "...", recognizer = "...") gives
    text_area, text_lines and text. Ratios are applied over the whole set after
    scoring, so the CSV is the same for any number of devices.
    """
    from mcrgpu.images.binning import bin_images
    from mcrgpu.images.binning_rules import read_rules

    if copy and bin_folders is None:
        raise click.UsageError("--copy applies to --bin_folders; add it")
    rules = read_rules(rules_file)  # malformed rules stop here, before any device is set up
    strategy = command_strategy(gpu_config)
    _finish(bin_images(list(sources), rules, out=out, strategy=strategy, batch_size=batch_size,
                       bin_folders=bin_folders, copy=copy, overwrite=overwrite, progress=progress))


OCR_EPILOG = f"""Examples:

  mcrgpu models export text_detector models/text_detector

  mcrgpu models export text_recognizer models/text_recognizer

  mcrgpu images ocr scans --detector models/text_detector --recognizer models/text_recognizer --out text.jsonl

  mcrgpu images ocr page.png --detector models/text_detector --out boxes.jsonl   (boxes only)

{EXIT_CODES}
"""


@images.command("ocr", cls=McrCommand, epilog=OCR_EPILOG)
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True), metavar="FILES_OR_DIR...")
@click.option("--detector", "detector_dir", required=True, type=click.Path(file_okay=False),
              help="Text detector SavedModel (`mcrgpu models export text_detector DIR`).")
@click.option("--recognizer", "recognizer_dir", type=click.Path(file_okay=False), default=None,
              help="Text recognizer SavedModel (`mcrgpu models export text_recognizer DIR`); without it only the "
                   "boxes are found.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="JSON Lines file to write, one record per image; work files and manifests go to <OUT stem>_ocr/.")
@click.option("--text_score", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Drop lines read with a lower score.")
@click.option("--batch_size", type=POSITIVE_INT, default=1, show_default=True,
              help="Images (detector) or text lines (recognizer) per device and step.")
@click.option("--overwrite", is_flag=True,
              help="Redo every image and replace --out (default: resume a run of the same models and files).")
@progress_option
@gpu_options
@exit_on_signals
def ocr_command(sources, detector_dir, recognizer_dir, out, text_score, batch_size, overwrite, progress,
                gpu_config) -> None:
    """Find and read the text lines in images: one JSON record per image in OUT.

    Each record: {"image", "height", "width", "lines": [{"box": [[x, y] x 4], "text", "score"}],
    "text_lines", "text_area", "error"}; boxes clockwise from the top left in image pixels, lines in
    reading order. Images are resized and lines cropped as RapidOCR does; grey, 16-bit and float
    images are converted to RGB 0..255; an image that cannot be read, or has a side under 8
    pixels, gets "error" and the others go on.
    """
    from mcrgpu.images.ocr import run_ocr

    strategy = command_strategy(gpu_config)
    _finish(run_ocr(list(sources), detector_dir, recognizer_dir, out=out, strategy=strategy, batch_size=batch_size,
                    text_score=text_score, overwrite=overwrite, progress=progress))
