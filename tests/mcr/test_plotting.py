"""Figures of microstructures, characterizations and convergence: panels, extents, PNG files."""

import matplotlib
import numpy as np
import pytest

from mcrgpu.mcr.characterization import characterize
from mcrgpu.errors import InvalidInputError
from mcrgpu.mcr.microstructure import Microstructure
from mcrgpu.mcr.plotting import plot_characterization, plot_convergence, plot_microstructure, save_figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LIMIT = 4
ALL_DESCRIPTORS = ["VolumeFractions", "FFTCorrelations", "Correlations", "TwoPointCorrelations",
                   "LinealPath", "Variation"]


def panels(figure):
    return [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]


def colorbars(figure):
    return [ax for ax in figure.axes if ax.get_label() == "<colorbar>"]


def titled(figure, prefix):
    return [ax for ax in figure.axes if ax.get_title().startswith(prefix)]


@pytest.fixture(scope="module")
def ch2d():
    labels = (np.random.default_rng(0).random((16, 16)) < 0.4).astype(int)
    return characterize(labels, ALL_DESCRIPTORS, limit_to=LIMIT, source="random.npy")


@pytest.fixture(scope="module")
def figure2d(ch2d):
    return plot_characterization(ch2d)


def suptitle(figure):
    (text,) = figure.texts
    return text.get_text()


def test_2d_microstructure_is_one_image_with_a_discrete_colour_per_phase():
    labels = np.array([[0, 255, 255], [0, 0, 255]])
    figure = plot_microstructure(labels, title="two phases")
    (ax,) = figure.axes
    (image,) = ax.images
    np.testing.assert_array_equal(image.get_array(), labels // 255)
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["phase 0", "phase 255"]
    assert image.norm(0) != image.norm(1)
    assert suptitle(figure) == "two phases"


def test_3d_microstructure_gives_three_orthogonal_mid_slices():
    ms = Microstructure(np.random.default_rng(1).integers(0, 3, (4, 5, 6)), phase_values=(1, 2, 7))
    figure = plot_microstructure(ms)
    assert len(figure.axes) == 3
    assert [ax.images[0].get_array().shape for ax in figure.axes] == [(5, 6), (4, 6), (4, 5)]
    np.testing.assert_array_equal(figure.axes[1].images[0].get_array(), ms.labels[:, 2, :])
    legend = figure.axes[-1].get_legend()
    assert [text.get_text() for text in legend.get_texts()] == ["phase 1", "phase 2", "phase 7"]


def test_microstructure_of_wrong_dimension_is_refused():
    with pytest.raises(InvalidInputError, match=r"2D \(H, W\) or 3D \(D, H, W\).*received shape \(5,\)"):
        plot_microstructure(np.zeros(5))


def test_characterization_has_one_row_of_panels_per_descriptor(ch2d, figure2d):
    figure = figure2d
    c = 2  # multiphase: one channel per phase
    # VolumeFractions 1, FFT c maps, Correlations and TwoPoint c maps + 1 curve panel, LinealPath c, Variation 1
    assert len(panels(figure)) == 1 + c + 2 * (c + 1) + c + 1
    assert len(colorbars(figure)) == 3 * c
    assert [bar.get_height() for bar in titled(figure, "VolumeFractions")[0].patches] == pytest.approx(
        ch2d.descriptors["VolumeFractions"].tolist())


def test_fft_maps_span_shifts_minus_to_plus_limit_with_zero_shift_at_the_centre(ch2d, figure2d):
    maps = titled(figure2d, "FFTCorrelations")
    assert len(maps) == 2
    for channel, ax in enumerate(maps):
        (image,) = ax.images
        # pixel centres at the integer shifts -(L-1)..L-1 on both axes
        assert image.get_extent() == [-(LIMIT - 1) - 0.5, LIMIT - 1 + 0.5, -(LIMIT - 1) - 0.5, LIMIT - 1 + 0.5]
        np.testing.assert_allclose(image.get_array(), ch2d.descriptors["FFTCorrelations"][channel])
        assert image.get_array()[LIMIT - 1, LIMIT - 1] == pytest.approx(ch2d.volume_fractions[channel], abs=1e-5)


@pytest.mark.parametrize("name", ["Correlations", "TwoPointCorrelations"])
def test_half_plane_map_places_s2_at_its_shift_and_nan_where_there_is_none(ch2d, figure2d, name):
    figure = figure2d
    value = ch2d.descriptors[name]
    s2 = np.diagonal(value, axis1=-2, axis2=-1) if value.ndim == 4 else value
    maps = [ax for ax in titled(figure, name) if ax.images]
    assert len(maps) == 2
    for channel, ax in enumerate(maps):
        image = ax.images[0]
        assert image.get_extent() == [-(LIMIT - 1) - 0.5, LIMIT - 1 + 0.5, -0.5, LIMIT - 0.5]
        data = np.ma.filled(image.get_array(), np.nan)
        assert data.shape == (LIMIT, 2 * LIMIT - 1)
        assert np.isnan(data[0, : LIMIT - 1]).all() and not np.isnan(data[0, LIMIT - 1 :]).any()
        assert not np.isnan(data[1:]).any()
        assert data[0, LIMIT - 1] == pytest.approx(s2[channel, 0, 0])  # r = (0, 0): the volume fraction
        assert data[1, 0] == pytest.approx(s2[channel, 0, LIMIT])  # (dy, dx) = (1, -(L-1))
    (curves,) = [ax for ax in titled(figure, name) if not ax.images]
    levels = s2.shape[1]
    assert len(curves.lines) == 2 * levels
    for level, line in enumerate(curves.lines[:levels]):
        np.testing.assert_array_equal(line.get_xdata(), np.arange(LIMIT) * 2 ** level)
        np.testing.assert_allclose(line.get_ydata(), s2[0, level, :LIMIT])


def test_lineal_path_curves_along_x_and_y_in_pixels_of_the_original_image(ch2d, figure2d):
    value = ch2d.descriptors["LinealPath"]
    axes = titled(figure2d, "LinealPath")
    assert len(axes) == 2
    levels = value.shape[1]
    lines = axes[1].lines
    assert len(lines) == 2 * levels
    for level in range(levels):
        along_x, along_y = lines[2 * level], lines[2 * level + 1]
        np.testing.assert_array_equal(along_x.get_xdata(), np.arange(LIMIT) * 2 ** level)
        np.testing.assert_allclose(along_x.get_ydata(), value[1, level, 0])
        np.testing.assert_allclose(along_y.get_ydata(), value[1, level, 1])


def test_3d_characterization_shows_the_mean_of_the_orientations():
    volume = (np.random.default_rng(2).random((8, 8, 8)) < 0.5).astype(int)
    ch = characterize(volume, ["VolumeFractions", "LinealPath"], limit_to=LIMIT, use_multiphase=False)
    figure = plot_characterization(ch)
    assert "mean of the 3 slice orientations" in suptitle(figure)
    assert len(panels(figure)) == 2  # one channel (phase 1): bar chart + one LinealPath panel
    assert titled(figure, "LinealPath")[0].get_title() == "LinealPath, phase 1"
    np.testing.assert_allclose(titled(figure, "LinealPath")[0].lines[0].get_ydata(),
                               ch.descriptors["LinealPath"][0, 0, 0])


def test_convergence_is_log_loss_with_time_on_a_second_axis():
    figure = plot_convergence([0, 10, 20], [1.0, 0.1, 0.01], seconds=[0.0, 1.0, 2.5], title="run")
    (ax,) = figure.axes
    assert ax.get_yscale() == "log"
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [1.0, 0.1, 0.01])
    assert ax.get_title() == "run"
    (time_axis,) = ax.child_axes
    assert time_axis.get_xlabel() == "time (s)"


def test_convergence_with_a_non_positive_loss_stays_linear():
    ax = plot_convergence([0, 1], [1.0, 0.0]).axes[0]
    assert ax.get_yscale() == "linear" and not ax.child_axes


def test_convergence_arrays_must_match():
    with pytest.raises(InvalidInputError, match=r"one length; received shapes .*'losses': \(2,\)"):
        plot_convergence([0, 1, 2], [1.0, 0.5])


def test_save_figure_writes_a_png_atomically(tmp_path):
    path = save_figure(plot_convergence([0, 1], [1.0, 0.5]), tmp_path / "new" / "loss.png")
    assert path == tmp_path / "new" / "loss.png"
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert [p.name for p in path.parent.iterdir()] == ["loss.png"]  # no temporary file left


def test_save_figure_refuses_other_objects(tmp_path):
    with pytest.raises(InvalidInputError, match="figure must be a matplotlib Figure; received str"):
        save_figure("figure", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_plotting_leaves_the_global_backend_alone(tmp_path):
    before = dict.__getitem__(matplotlib.rcParams, "backend")  # without resolving it
    save_figure(plot_microstructure(np.eye(4, dtype=int)), tmp_path / "ms.png")
    assert dict.__getitem__(matplotlib.rcParams, "backend") == before
