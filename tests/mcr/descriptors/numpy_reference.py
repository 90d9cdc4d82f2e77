"""Plain NumPy references for every descriptor, written with explicit loops on one 2D slice."""

import math

import numpy as np

__all__ = [
    "pool",
    "ref_volume_fraction",
    "ref_s2_window",
    "ref_half_plane_shifts",
    "ref_gram",
    "ref_two_point",
    "ref_variation",
    "ref_lineal_path",
    "ref_lineal_path_binary",
    "checkerboard",
    "stripes",
    "disc",
]


def pool(img, factor):
    """Average over factor x factor blocks, dropping the rows/columns that do not fit."""
    h, w = img.shape[0] // factor, img.shape[1] // factor
    out = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            out[i, j] = img[i * factor : (i + 1) * factor, j * factor : (j + 1) * factor].mean()
    return out


def ref_volume_fraction(img):
    return float(np.sum(img) / img.size)


def ref_s2_window(img, limit, periodic):
    """S2(dy, dx) for |dy|, |dx| < limit, averaged over positions where p + r exists."""
    height, width = img.shape
    out = np.zeros((2 * limit - 1, 2 * limit - 1))
    for dy in range(1 - limit, limit):
        for dx in range(1 - limit, limit):
            total, count = 0.0, 0
            for i in range(height):
                for j in range(width):
                    ii, jj = i + dy, j + dx
                    if periodic:
                        ii, jj = ii % height, jj % width
                    elif not (0 <= ii < height and 0 <= jj < width):
                        continue
                    total += img[i, j] * img[ii, jj]
                    count += 1
            out[dy + limit - 1, dx + limit - 1] = total / count
    return out


def ref_half_plane_shifts(limit):
    shifts = []
    for dy in range(limit):
        for dx in range(1 - limit, limit):
            if dy == 0 and dx < 0:
                continue
            shifts.append((dy, dx))
    return shifts


def _soft_and(a, b, k):
    def sig(z):
        return 1.0 / (1.0 + math.exp(-z))

    return (sig(k * ((a + b) / 2 - 0.75)) - sig(-0.75 * k)) / (sig(0.25 * k) - sig(-0.75 * k))


def _maps(img, limit, periodic, k):
    """List of soft-AND maps, one per half-plane shift, over the valid positions."""
    height, width = img.shape
    shifts = ref_half_plane_shifts(limit)
    if periodic:
        rows, cols = range(height), range(width)
    else:
        rows, cols = range(0, height - (limit - 1)), range(limit - 1, width - (limit - 1))
    maps = []
    for dy, dx in shifts:
        m = np.zeros((len(rows), len(cols)))
        for a, i in enumerate(rows):
            for b, j in enumerate(cols):
                m[a, b] = _soft_and(img[i, j], img[(i + dy) % height, (j + dx) % width], k)
        maps.append(m)
    return maps


def ref_gram(img, limit, periodic, k):
    maps = _maps(img, limit, periodic, k)
    n = len(maps)
    gram = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            gram[i, j] = np.sum(maps[i] * maps[j]) / maps[i].size
    return gram


def ref_two_point(img, limit, periodic, k):
    return np.array([np.sum(m * m) / m.size for m in _maps(img, limit, periodic, k)])


def ref_variation(img, periodic):
    height, width = img.shape
    total = 0.0
    for i in range(height):
        for j in range(width):
            for di, dj in ((0, 1), (1, 0)):
                ii, jj = i + di, j + dj
                if periodic:
                    ii, jj = ii % height, jj % width
                elif ii >= height or jj >= width:
                    continue
                total += abs(img[ii, jj] - img[i, j])
    return total / (height * width)


def ref_lineal_path(img, limit, periodic):
    """(2, limit): product relaxation along x (rows) and y (columns) by explicit loops."""
    out = np.zeros((2, limit))
    for d, arr in enumerate((img, img.T)):
        rows, size = arr.shape
        for r in range(limit):
            total, count = 0.0, 0
            starts = range(size) if periodic else range(size - r)
            for i in range(rows):
                for j in starts:
                    prod = 1.0
                    for step in range(r + 1):
                        prod *= arr[i, (j + step) % size]
                    total += prod
                    count += 1
            out[d, r] = total / count
    return out


def _runs(line):
    """Lengths of the runs of ones in a 1D 0/1 sequence."""
    runs, current = [], 0
    for value in line:
        if value:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    if current:
        runs.append(current)
    return runs


def ref_lineal_path_binary(img, limit, periodic):
    """Exact lineal path of a 0/1 slice by counting segments inside runs of the phase."""
    out = np.zeros((2, limit))
    for d, arr in enumerate((img, img.T)):
        rows, size = arr.shape
        for r in range(limit):
            segments = 0
            for line in arr:
                if periodic and line.all():
                    segments += size
                    continue
                if periodic:
                    first_zero = int(np.argmin(line))
                    line = np.roll(line, -first_zero)
                segments += sum(max(0, run - r) for run in _runs(line))
            out[d, r] = segments / (rows * (size if periodic else size - r))
    return out


def checkerboard(height, width):
    i, j = np.indices((height, width))
    return ((i + j) % 2).astype(float)


def stripes(height, width, period):
    """Vertical stripes: columns with (j mod period) < period / 2 are in the phase."""
    j = np.indices((height, width))[1]
    return ((j % period) < period // 2).astype(float)


def disc(height, width, radius):
    i, j = np.indices((height, width))
    return (((i - height / 2) ** 2 + (j - width / 2) ** 2) <= radius**2).astype(float)
