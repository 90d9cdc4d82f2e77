"""Figures of microstructures, characterizations and convergence histories, rendered with Agg."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from numpy.typing import ArrayLike

from mcrgpu.mcr.characterization import Characterization
from mcrgpu.mcr.compare import chord_lengths
from mcrgpu.mcr.descriptors import half_plane_shifts
from mcrgpu.errors import InvalidInputError
from mcrgpu.io import atomic_write
from mcrgpu.mcr.microstructure import Microstructure
from mcrgpu.mcr.two_point import summary_phases, two_point_map

__all__ = ["plot_microstructure", "plot_characterization", "plot_convergence", "plot_comparison", "save_figure"]

_PANEL_SIZE = (4.0, 3.3)
_LINE_STYLES = ("-", "--", ":", "-.")


def _figure(n_rows: float, n_cols: float) -> Figure:
    """A figure with its own Agg canvas (no pyplot, no global backend) sized for a panel grid."""
    figure = Figure(figsize=(_PANEL_SIZE[0] * n_cols, _PANEL_SIZE[1] * n_rows), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _phase_colours(n_phases: int) -> ListedColormap:
    import matplotlib

    if n_phases <= 10:
        colours = matplotlib.colormaps["tab10"].colors[:n_phases]
    elif n_phases <= 20:
        colours = matplotlib.colormaps["tab20"].colors[:n_phases]
    else:
        colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 1.0, n_phases))
    return ListedColormap(colours)


def plot_microstructure(labels: ArrayLike | Microstructure, *, title: str = "") -> Figure:
    """Show phase labels with one discrete colour per phase.

    A 2D structure is one image; a 3D volume gives its three orthogonal mid-slices
    (perpendicular to axis 0, 1 and 2) side by side. The legend names each phase by its label.

    Parameters
    ----------
    labels : array_like of int or Microstructure
        Phase labels, shape (H, W) or (D, H, W).
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per image (1 for 2D, 3 for 3D).

    Raises
    ------
    InvalidInputError
        If ``labels`` is not 2D or 3D, or empty.

    Examples
    --------
    >>> figure = plot_microstructure(np.indices((8, 8)).sum(axis=0) % 2)
    >>> len(figure.axes)
    1
    """
    if isinstance(labels, Microstructure):
        indices, values = labels.labels, labels.phase_values
    else:
        array = np.asarray(labels)
        if array.ndim not in (2, 3) or array.size == 0:
            raise InvalidInputError(
                f"labels must be a non-empty 2D (H, W) or 3D (D, H, W) array; received shape {array.shape}"
            )
        unique, inverse = np.unique(array, return_inverse=True)
        indices, values = inverse.reshape(array.shape), tuple(unique.tolist())
    if indices.ndim == 2:
        images = [("", indices, ("x", "y"))]
    else:
        images = [(f"axis {axis} mid-slice", np.take(indices, indices.shape[axis] // 2, axis=axis),
                   tuple(f"axis {other}" for other in range(3) if other != axis)[::-1])
                  for axis in range(3)]
    n_phases = len(values)
    cmap = _phase_colours(n_phases)
    norm = BoundaryNorm(np.arange(n_phases + 1) - 0.5, n_phases)
    figure = _figure(1, len(images))
    for column, (name, image, (horizontal, vertical)) in enumerate(images):
        ax = figure.add_subplot(1, len(images), column + 1)
        ax.imshow(image, cmap=cmap, norm=norm, interpolation="nearest")
        ax.set_title(f"{name} {image.shape[0]}x{image.shape[1]}".strip())
        ax.set_xlabel(f"{horizontal} (pixels)")
        ax.set_ylabel(f"{vertical} (pixels)")
    handles = [Patch(color=cmap(i), label=f"phase {value}") for i, value in enumerate(values)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")
    if title:
        figure.suptitle(title)
    return figure


def _channel_names(ch: Characterization, n_channels: int) -> list[str]:
    values = list(ch.phase_values)
    if ch.multiphase and len(values) == n_channels:
        return [f"phase {value}" for value in values]
    if not ch.multiphase and n_channels == 1 and len(values) >= 2:
        return [f"phase {values[1]}"]
    return [f"channel {c}" for c in range(n_channels)]


def _limit_from_half_plane(k: int) -> int:
    """``L`` with ``L**2 + (L-1)**2 == k`` (the number of half-plane shifts)."""
    limit = int(round((1 + np.sqrt(2 * k - 1)) / 2))
    if limit ** 2 + (limit - 1) ** 2 != k:
        raise InvalidInputError(f"{k} is not a number of half-plane shifts L**2 + (L-1)**2")
    return limit


def _half_plane_map(s2: np.ndarray, limit: int) -> np.ndarray:
    """(L, 2L-1) image of S2 at shifts (dy, dx), dy = 0..L-1, dx = -(L-1)..L-1; NaN elsewhere."""
    image = np.full((limit, 2 * limit - 1), np.nan)
    shifts = half_plane_shifts(limit)
    image[shifts[:, 0], shifts[:, 1] + limit - 1] = s2
    return image


def _shift_image(ax, figure, image: np.ndarray, dy_range: tuple[int, int], limit: int, title: str):
    extent = (-(limit - 1) - 0.5, limit - 1 + 0.5, dy_range[0] - 0.5, dy_range[1] + 0.5)
    im = ax.imshow(image, origin="lower", extent=extent, cmap="viridis", interpolation="nearest")
    ax.set_xlabel("dx (pixels)")
    ax.set_ylabel("dy (pixels)")
    ax.set_title(title)
    figure.colorbar(im, ax=ax)  # the title says what the colours are


def _draw_scalars(name: str, unit: str) -> Callable:
    def draw(figure, slots, ch, value):
        ax = slots[0]
        names = _channel_names(ch, value.shape[0])
        bars = ax.bar(names, value, color=_phase_colours(len(names)).colors)
        ax.bar_label(bars, fmt="%.4g")
        ax.margins(y=0.12)
        ax.set_ylabel(unit)
        ax.set_title(name)
    return draw


def _draw_fft(figure, slots, ch, value):
    limit = (value.shape[-1] + 1) // 2
    for ax, name, s2 in zip(slots, _channel_names(ch, value.shape[0]), value):
        _shift_image(ax, figure, s2, (1 - limit, limit - 1), limit, f"FFTCorrelations\nS2, {name}")


def _draw_half_plane(name: str) -> Callable:
    def draw(figure, slots, ch, value):
        s2 = np.diagonal(value, axis1=-2, axis2=-1) if value.ndim == 4 else value  # (C, levels, K)
        limit = _limit_from_half_plane(s2.shape[-1])
        names = _channel_names(ch, s2.shape[0])
        for ax, channel, values in zip(slots, names, s2):
            _shift_image(ax, figure, _half_plane_map(values[0], limit), (0, limit - 1), limit,
                         f"{name}\nS2 level 0, {channel}")
        ax = slots[-1]
        colours = _phase_colours(len(names)).colors
        for c, (channel, values) in enumerate(zip(names, s2)):
            for level, level_values in enumerate(values):
                ax.plot(np.arange(limit) * 2 ** level, level_values[:limit], marker=".",
                        color=colours[c], linestyle=_LINE_STYLES[level % len(_LINE_STYLES)],
                        label=f"{channel}, level {level}")
        ax.set_xlabel("dx at dy = 0 (original pixels)")
        ax.set_ylabel("S2")
        ax.set_title(f"{name}\nS2 along x, every level")
        ax.legend(fontsize="x-small")
    return draw


def _draw_lineal_path(figure, slots, ch, value):
    limit = value.shape[-1]
    for ax, channel, values in zip(slots, _channel_names(ch, value.shape[0]), value):
        for level, (along_x, along_y) in enumerate(values):
            r = np.arange(limit) * 2 ** level
            line, = ax.plot(r, along_x, marker=".", label=f"x, level {level}")
            ax.plot(r, along_y, marker=".", linestyle="--", color=line.get_color(), label=f"y, level {level}")
        ax.set_xlabel("r (pixels of the original image)")
        ax.set_ylabel("L(r)")
        ax.set_title(f"LinealPath, {channel}")
        ax.legend(fontsize="x-small")


def _draw_unknown(figure, slots, ch, value):
    slots[0].axis("off")
    slots[0].text(0.5, 0.5, f"values of shape {value.shape}\n(no plot for this descriptor)",
                  ha="center", va="center", transform=slots[0].transAxes)


_DRAWERS: dict[str, Callable] = {
    "VolumeFractions": _draw_scalars("VolumeFractions", "volume fraction"),
    "Variation": _draw_scalars("Variation", "total variation per pixel"),
    "FFTCorrelations": _draw_fft,
    "Correlations": _draw_half_plane("Correlations"),
    "TwoPointCorrelations": _draw_half_plane("TwoPointCorrelations"),
    "LinealPath": _draw_lineal_path,
}

_SINGLE_PANEL = ("VolumeFractions", "Variation")


def _n_panels(name: str, value: np.ndarray) -> int:
    if name not in _DRAWERS or name in _SINGLE_PANEL:
        return 1
    return value.shape[0] + (name in ("Correlations", "TwoPointCorrelations"))


def plot_characterization(ch: Characterization) -> Figure:
    """Plot every descriptor of a characterization, one row of panels per descriptor.

    VolumeFractions and Variation are bar charts per channel. FFTCorrelations is an S2 map per
    channel over shifts ``dx, dy = -(L-1)..L-1`` (pixels). Correlations and TwoPointCorrelations
    give the level-0 S2 on the half plane ``dy = 0..L-1`` per channel (NaN where there is no
    shift) and one panel of S2 along ``dx`` at ``dy = 0`` for every level, with level ``n``'s
    shifts scaled by ``2**n`` to pixels of the original image. LinealPath gives ``L(r)`` along x
    (solid) and y (dashed) per channel, ``r`` scaled the same way. A 3D characterization shows
    the mean over the three slice orientations.

    Parameters
    ----------
    ch : Characterization

    Returns
    -------
    matplotlib.figure.Figure
        Shift maps are images whose ``extent`` puts pixel centres on integer shifts; each has a
        colorbar axes.

    Examples
    --------
    >>> from mcrgpu.mcr.characterization import characterize
    >>> ch = characterize(np.indices((16, 16)).sum(axis=0) % 2, ["VolumeFractions"])
    >>> len(plot_characterization(ch).axes)
    1
    """
    if not isinstance(ch, Characterization):
        raise InvalidInputError(f"ch must be a Characterization; received {type(ch).__name__}")
    values = {name: np.asarray(value, dtype=np.float64) for name, value in ch.descriptors.items()}
    rows = [(name, value, _n_panels(name, value)) for name, value in values.items()]
    n_cols = max([panels for _, _, panels in rows], default=1)
    figure = _figure(max(len(rows), 1), n_cols)
    grid = figure.add_gridspec(max(len(rows), 1), n_cols)
    for row, (name, value, panels) in enumerate(rows):
        slots = [figure.add_subplot(grid[row, column]) for column in range(panels)]
        _DRAWERS.get(name, _draw_unknown)(figure, slots, ch, value)
        if name not in _DRAWERS:
            slots[0].set_title(name)
    shape = "x".join(str(size) for size in ch.source_shape)
    kind = "mean of the 3 slice orientations" if ch.is_3d else "2D"
    figure.suptitle(f"{ch.source or 'characterization'} ({shape}, {kind}, limit_to={ch.settings.limit_to})")
    return figure


def plot_convergence(iterations: ArrayLike, losses: ArrayLike, *, seconds: ArrayLike | None = None,
                     title: str = "") -> Figure:
    """Loss against iteration on a log axis, with wall time on a second x axis if given.

    Parameters
    ----------
    iterations, losses : array_like, shape (N,)
        Iteration numbers (increasing) and the loss at each.
    seconds : array_like, shape (N,), optional
        Elapsed seconds at each iteration; shown on the top axis when increasing, else noted.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        One axes (plus a secondary x axis for time).

    Raises
    ------
    InvalidInputError
        If the arrays are empty, not 1D, or differ in length.

    Examples
    --------
    >>> figure = plot_convergence([0, 10, 20], [1.0, 0.1, 0.01], seconds=[0.0, 1.5, 3.0])
    >>> figure.axes[0].get_yscale()
    'log'
    """
    iterations = np.asarray(iterations, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    arrays = {"iterations": iterations, "losses": losses}
    if seconds is not None:
        seconds = np.asarray(seconds, dtype=np.float64)
        arrays["seconds"] = seconds
    shapes = {name: array.shape for name, array in arrays.items()}
    if len(set(shapes.values())) != 1 or iterations.ndim != 1 or iterations.size == 0:
        raise InvalidInputError(f"iterations, losses and seconds must be non-empty 1D arrays of one "
                                f"length; received shapes {shapes}")
    figure = _figure(1, 1.5)
    ax = figure.add_subplot()
    ax.plot(iterations, losses, marker="." if iterations.size < 50 else None)
    if np.all(losses[np.isfinite(losses)] > 0):
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.grid(True, which="major", alpha=0.3)
    if seconds is not None:
        if iterations.size > 1 and np.all(np.diff(iterations) > 0) and np.all(np.diff(seconds) > 0):
            time_axis = ax.secondary_xaxis(
                "top", functions=(lambda i: np.interp(i, iterations, seconds),
                                  lambda s: np.interp(s, seconds, iterations)))
            time_axis.set_xlabel("time (s)")
            time_axis.set_xticks(_time_ticks(iterations, seconds))
        else:
            ax.annotate(f"{seconds[-1]:.3g} s", xy=(1.0, 1.0), xycoords="axes fraction",
                        ha="right", va="bottom")
    ax.set_title(title or f"final loss {losses[-1]:.4g} after iteration {iterations[-1]:g}")
    return figure


def _mid_slice(labels: np.ndarray) -> np.ndarray:
    return labels[labels.shape[0] // 2] if labels.ndim == 3 else labels


def plot_comparison(original: Microstructure | ArrayLike, results, *, limit: int = 8,
                    names=None) -> Figure:
    """Original and results side by side (mid-slice of a volume), over their S2 and chord-length curves.

    Top row: the structures. Bottom row: S2 of each summary phase (not the most abundant one) along
    the x axis (``dy = 0``) and the chord-length distribution of that phase along the last axis
    (fraction of chords of each length), original solid, results dashed.

    Parameters
    ----------
    original, results
        Phase labels (Microstructure or arrays); ``results`` one or a sequence.
    limit : int
        S2 is drawn for shifts ``0..limit - 1``.
    names : sequence of str, optional
        Titles, the original's first.

    Returns
    -------
    matplotlib.figure.Figure
    """
    as_labels = [np.asarray(s.labels if isinstance(s, Microstructure) else Microstructure(s).labels)
                 for s in ([original] + (list(results) if isinstance(results, (list, tuple)) else [results]))]
    names = list(names) if names else ["original"] + [f"result {i}" for i in range(1, len(as_labels))]
    n_phases = int(max(labels.max() for labels in as_labels)) + 1
    phases = summary_phases(np.bincount(as_labels[0].ravel(), minlength=n_phases))
    columns = max(len(as_labels), 2)
    figure = _figure(2, columns)
    grid = figure.add_gridspec(2, columns)
    colours = _phase_colours(n_phases)
    for index, (labels, name) in enumerate(zip(as_labels, names)):
        ax = figure.add_subplot(grid[0, index])
        ax.imshow(_mid_slice(labels), cmap=colours, norm=BoundaryNorm(np.arange(-0.5, n_phases), n_phases),
                  interpolation="nearest")
        ax.set_title(name + (" (mid-slice)" if labels.ndim == 3 else ""), fontsize="medium")
        ax.set_xticks([])
        ax.set_yticks([])
    s2_axes = figure.add_subplot(grid[1, : columns // 2])
    chord_axes = figure.add_subplot(grid[1, columns // 2:])
    for index, (labels, name) in enumerate(zip(as_labels, names)):
        style = "-" if index == 0 else "--"
        for phase in phases:
            colour = colours(phase) if len(as_labels) == 2 else f"C{index}"
            s2 = two_point_map(labels, phase, limit=limit)[limit - 1, limit - 1:]
            s2_axes.plot(np.arange(limit), s2, style, color=colour, label=f"{name}, phase {phase}")
            chords = chord_lengths(labels, phase, axis=labels.ndim - 1)
            if chords.size:
                counts = np.bincount(chords)[1:]
                chord_axes.plot(np.arange(1, counts.size + 1), counts / counts.sum(), style, color=colour,
                                label=f"{name}, phase {phase}")
    s2_axes.set_xlabel("shift r along x (pixels)")
    s2_axes.set_ylabel("S2(r)")
    chord_axes.set_xlabel("chord length along x (pixels)")
    chord_axes.set_ylabel("fraction of chords")
    for ax in (s2_axes, chord_axes):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    return figure


def _time_ticks(iterations: np.ndarray, seconds: np.ndarray) -> list[float]:
    """Round times within the run, dropped where they would sit closer than 8 % of the axis to the
    previous one (time is not linear in iterations: the first evaluation includes tracing)."""
    span = iterations[-1] - iterations[0]
    ticks, last = [], -np.inf
    for tick in MaxNLocator(nbins=6).tick_values(seconds[0], seconds[-1]):
        position = np.interp(tick, seconds, iterations)
        if seconds[0] <= tick <= seconds[-1] and position - last >= 0.08 * span:
            ticks.append(float(tick))
            last = position
    return ticks


def save_figure(figure: Figure, path: str | os.PathLike[str]) -> Path:
    """Render ``figure`` as PNG to ``path`` atomically (all of it, or nothing).

    Parameters
    ----------
    figure : matplotlib.figure.Figure
    path : str or os.PathLike
        The file to write, PNG whatever its suffix; parent directories are created.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    InvalidInputError
        If ``figure`` is not a matplotlib Figure.
    """
    if not isinstance(figure, Figure):
        raise InvalidInputError(f"figure must be a matplotlib Figure; received {type(figure).__name__}")
    if not isinstance(figure.canvas, FigureCanvasAgg):
        FigureCanvasAgg(figure)
    path = Path(path)
    with atomic_write(path) as handle:
        figure.savefig(handle, format="png", dpi=100)
    return path
