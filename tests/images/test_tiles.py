"""Tiled inference: crop stitching equals the whole-image output, blend error, resuming, GeoTIFF tags, bad input."""

import json

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from mcrgpu.cli import main
from mcrgpu.errors import InvalidInputError
from mcrgpu.images import run_tiles
from mcrgpu.images.rasters import RasterWriter

from .tiling_models import ConvTanh, crash_on_the_fourth_tile_row, export

GEO = [(33550, 12, 3, (0.5, 0.5, 0.0)), (33922, 12, 6, (0.0, 0.0, 0.0, 500000.0, 4000000.0, 0.0)),
       (34264, 12, 16, tuple(float(v) for v in range(16))), (34735, 3, 8, (1, 1, 0, 1, 1024, 0, 1, 1)),
       (34736, 12, 2, (6378137.0, 298.257)), (34737, 2, 0, "WGS 84|"),
       (42112, 2, 0, "<GDALMetadata></GDALMetadata>"), (42113, 2, 0, "-9999")]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tile_models")
    modules = {"grey": ConvTanh(), "colour": ConvTanh(size=5, in_channels=3, out_channels=2),
               "up2": ConvTanh(size=5, up=2), "down2": ConvTanh(size=3, down=2),
               "undeclared": ConvTanh(declare=False), "limited": ConvTanh(size=3, limit=1.0)}
    return {name: (module, export(module, root / name)) for name, module in modules.items()}


def raster(shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


@pytest.mark.parametrize("tile_size", [25, 37], ids=["divides", "does_not_divide"])
@pytest.mark.parametrize("kind", ["grey", "colour"])
def test_crop_equals_the_whole_image_output(tmp_path, strategy, models, tile_size, kind):
    module, path = models[kind]
    image = raster((100, 125) if kind == "grey" else (100, 125, 3))
    np.save(tmp_path / "in.npy", image)
    summary = run_tiles(tmp_path / "in.npy", tmp_path / "out.npy", path, strategy=strategy, tile_size=tile_size,
                        progress=False)
    assert summary.exit_code == 0 and summary.done == -(-100 // tile_size)
    result, whole = np.load(tmp_path / "out.npy"), module.whole(image)
    assert result.shape == whole.shape == ((100, 125) if kind == "grey" else (100, 125, 2))
    assert np.abs(result - whole).max() < 1e-6
    for corner in (np.s_[:7, :7], np.s_[:7, -7:], np.s_[-7:, :7], np.s_[-7:, -7:]):  # zero padding, as 'SAME'
        assert np.abs(result[corner] - whole[corner]).max() < 1e-6


@pytest.mark.parametrize("replicas", [1, 3])
def test_crop_with_output_scale_2(tmp_path, models, replicas):
    from conftest import cpu_strategy

    module, path = models["up2"]
    image = raster((70, 53), seed=1)
    np.save(tmp_path / "in.npy", image)
    run_tiles(tmp_path / "in.npy", tmp_path / "out.tif", path, strategy=cpu_strategy(replicas), tile_size=16,
              batch_size=2, progress=False)
    result = tifffile.imread(tmp_path / "out.tif")
    assert result.shape == (140, 106)
    assert np.abs(result - module.whole(image)).max() < 1e-6


def test_crop_with_output_scale_one_half(tmp_path, models):
    module, path = models["down2"]
    image = raster((66, 50), seed=7)
    np.save(tmp_path / "in.npy", image)
    run_tiles(tmp_path / "in.npy", tmp_path / "out.npy", path, tile_size=14, progress=False)  # halo 1 -> 2
    result = np.load(tmp_path / "out.npy")
    assert result.shape == (33, 25)
    assert np.abs(result - module.whole(image)).max() < 1e-6
    with pytest.raises(InvalidInputError, match="multiple of the model's down factor 2"):
        run_tiles(tmp_path / "in.npy", tmp_path / "out.npy", path, tile_size=15, progress=False)


def test_a_failing_band_stops_the_run_with_exit_code_3(tmp_path, models):
    image = raster((60, 40), seed=8)
    image[45, 10] = 5.0  # band 2 of tile size 20
    np.save(tmp_path / "in.npy", image)
    summary = run_tiles(tmp_path / "in.npy", tmp_path / "out.npy", models["limited"][1], tile_size=20,
                        progress=False)
    assert (summary.done, summary.failed, summary.exit_code) == (2, 1, 3)
    assert not (tmp_path / "out.npy").exists() and (tmp_path / ".out.partial.npy").is_file()
    records = [json.loads(line) for line in (tmp_path / "out.npy.manifest.jsonl").read_text().splitlines()]
    assert records[-1]["status"] == "failed" and "input above the limit" in records[-1]["reason"]


def test_blend_error_is_small_and_crop_without_halo_is_not(tmp_path, models):
    module, path = models["undeclared"]
    image = raster((150, 190), seed=2)
    np.save(tmp_path / "in.npy", image)
    whole = module.whole(image)
    errors = {}
    for stitch, options in (("naive", {"halo": 0}), ("blend", {"stitch": "blend", "overlap": 0.5}),
                            ("crop", {"halo": 6})):
        run_tiles(tmp_path / "in.npy", tmp_path / f"{stitch}.npy", path, tile_size=32, progress=False, **options)
        errors[stitch] = np.abs(np.load(tmp_path / f"{stitch}.npy") - whole)
    assert errors["crop"].max() < 1e-6
    assert errors["blend"].mean() < 0.5 * errors["naive"].mean()
    assert errors["naive"].max() > 0.1


def test_geotiff_tags_survive_and_tiff_inputs_are_read_lazily(tmp_path, models):
    module, path = models["grey"]
    image = (raster((90, 70), seed=3) * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "geo.tif", image, tile=(32, 32), compression="zlib",
                     extratags=[(*tag, True) for tag in GEO])
    tifffile.imwrite(tmp_path / "strips.tif", image, rowsperstrip=7)
    whole = module.whole(image / np.float32(65535))
    for name in ("geo", "strips"):
        run_tiles(tmp_path / f"{name}.tif", tmp_path / f"{name}_out.tif", path, tile_size=40, progress=False)
        assert np.abs(tifffile.imread(tmp_path / f"{name}_out.tif") - whole).max() < 1e-6
    with tifffile.TiffFile(tmp_path / "geo_out.tif") as tiff:
        page = tiff.pages.first
        assert page.is_tiled
        for code, _, _, value in GEO:
            assert page.tags[code].value == value


def test_output_scale_adjusts_the_pixel_size(tmp_path, models):
    _, path = models["up2"]
    tifffile.imwrite(tmp_path / "geo.tif", (raster((40, 40)) * 255).astype(np.uint8), extratags=[(*GEO[0], True)])
    run_tiles(tmp_path / "geo.tif", tmp_path / "out.tif", path, tile_size=16, progress=False)
    with tifffile.TiffFile(tmp_path / "out.tif") as tiff:
        assert tiff.pages.first.tags[33550].value == (0.25, 0.25, 0.0)


def test_a_rerun_resumes_after_an_interruption_writing_every_row_once(tmp_path, models, monkeypatch):
    module, path = models["grey"]
    image = raster((110, 60), seed=4)
    np.save(tmp_path / "in.npy", image)
    written = []
    write_rows = RasterWriter.write_rows

    def logged(self, start, values):
        written.append((start, len(values)))
        write_rows(self, start, values)

    monkeypatch.setattr(RasterWriter, "write_rows", logged)
    crash_on_the_fourth_tile_row(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run_tiles(tmp_path / "in.npy", tmp_path / "out.tif", path, tile_size=20, progress=False)
    assert not (tmp_path / "out.tif").exists() and (tmp_path / ".out.partial.tif").is_file()
    summary = run_tiles(tmp_path / "in.npy", tmp_path / "out.tif", path, tile_size=20, progress=False)
    assert (summary.skipped, summary.done, summary.exit_code) == (3, 3, 0)
    rows = sorted(written)
    assert [start for start, _ in rows] == list(range(0, 110, 20))  # each band once, none twice
    assert np.abs(tifffile.imread(tmp_path / "out.tif") - module.whole(image)).max() < 1e-6
    assert run_tiles(tmp_path / "in.npy", tmp_path / "out.tif", path, tile_size=20, progress=False).skipped == 6
    records = [json.loads(line) for line in (tmp_path / "out.tif.manifest.jsonl").read_text().splitlines()]
    assert records[-1]["status"] == "ok" and records[-1]["output"] == "out.tif"


def test_argument_errors(tmp_path, models):
    _, path = models["grey"]
    np.save(tmp_path / "in.npy", raster((30, 30)))
    cases = [({"halo": 2}, "halo 2 is below the receptive radius 6"),
             ({"stitch": "blend", "halo": 6}, "halo applies"),
             ({"stitch": "blend", "overlap": 1.5}, "overlap must be in (0, 1]"),
             ({"tile_size": 0}, "tile_size must be an integer >= 1")]
    for options, message in cases:
        with pytest.raises(InvalidInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            run_tiles(tmp_path / "in.npy", tmp_path / "out.npy", path, progress=False, **options)
    with pytest.raises(InvalidInputError, match="declares no receptive_radius"):
        run_tiles(tmp_path / "in.npy", tmp_path / "out.npy", models["undeclared"][1], progress=False)


@pytest.mark.parametrize("args, message", [
    (["missing.tif", "out.tif"], "missing.tif: no such file"),
    (["in.npy", "out.tif", "--halo", "3"], "halo 3 is below the receptive radius 6"),
    (["in.npy", "out.png"], "must end in .tif, .tiff, .npy"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, models, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "in.npy", raster((30, 30)))
    result = CliRunner().invoke(main, ["images", "tiles", *args, "--model", models["grey"][1], "--no_progress"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0]


def test_cli_writes_the_output(tmp_path, models):
    module, path = models["colour"]
    image = (raster((40, 50, 3), seed=5) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "in.tif", image, photometric="rgb")
    result = CliRunner().invoke(main, ["images", "tiles", str(tmp_path / "in.tif"), str(tmp_path / "out.tif"),
                                       "--model", path, "--tile_size", "16", "--cpu_devices", "2", "--no_progress"])
    assert result.exit_code == 0, result.output
    assert "3 bands done" in result.output and "12 tiles" in result.output
    whole = module.whole(image / np.float32(255))
    assert np.abs(tifffile.imread(tmp_path / "out.tif") - whole).max() < 1e-6


def test_an_interrupted_blend_resumes_to_the_same_output(tmp_path, models, monkeypatch):
    _, path = models["undeclared"]
    image = raster((100, 70), seed=6)
    np.save(tmp_path / "in.npy", image)
    options = {"tile_size": 16, "stitch": "blend", "overlap": 0.5, "progress": False}
    run_tiles(tmp_path / "in.npy", tmp_path / "straight.npy", path, **options)
    crash_on_the_fourth_tile_row(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run_tiles(tmp_path / "in.npy", tmp_path / "resumed.npy", path, **options)
    summary = run_tiles(tmp_path / "in.npy", tmp_path / "resumed.npy", path, **options)
    assert (summary.skipped, summary.done) == (2, 5)  # bands 0 and 1 were final after tile rows 0-2
    assert np.array_equal(np.load(tmp_path / "resumed.npy"), np.load(tmp_path / "straight.npy"))
