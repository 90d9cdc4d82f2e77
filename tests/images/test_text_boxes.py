"""DB post-processing: boxes of hand-made maps, minimum-area rectangles against a brute force, reading order."""

import numpy as np
import pytest

from mcrgpu.images.text_boxes import DBSettings, box_score, min_area_rect, sorted_boxes, text_area, text_boxes


def brute_force_rect_area(points, steps=20000):
    """The least area of a rectangle holding ``points`` over ``steps`` angles in [0, pi/2)."""
    angles = np.linspace(0, np.pi / 2, steps, endpoint=False)
    u = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    v = np.stack([-np.sin(angles), np.cos(angles)], axis=1)
    along, across = points @ u.T, points @ v.T
    return (np.ptp(along, axis=0) * np.ptp(across, axis=0)).min()


@pytest.mark.parametrize("seed", range(5))
def test_min_area_rect_holds_every_point_and_has_the_least_area(seed):
    rng = np.random.default_rng(seed)
    rotation = np.array([[np.cos(seed), np.sin(seed)], [-np.sin(seed), np.cos(seed)]])
    points = rng.normal(size=(40, 2)) * [30, 5] @ rotation
    corners, short_side = min_area_rect(points)
    sides = np.linalg.norm(np.roll(corners, -1, axis=0) - corners, axis=1)
    assert sides[0] == pytest.approx(sides[2]) and sides[1] == pytest.approx(sides[3])
    assert short_side == pytest.approx(sides.min())
    area = sides[0] * sides[1]
    assert brute_force_rect_area(points) * (1 - 1e-4) <= area <= brute_force_rect_area(points) + 1e-9
    centre = corners.mean(axis=0)
    u = (corners[1] - corners[0]) / sides[0]
    v = (corners[3] - corners[0]) / sides[3]
    offsets = points - centre
    assert np.all(np.abs(offsets @ u) <= sides[0] / 2 + 1e-9) and np.all(np.abs(offsets @ v) <= sides[1] / 2 + 1e-9)


def test_collinear_points_have_no_rectangle():
    assert min_area_rect(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])) is None


def test_a_rectangle_of_text_gives_its_grown_box_and_score():
    probability = np.zeros((64, 96), np.float32)
    probability[10:20, 20:60] = 0.9
    boxes, scores = text_boxes(probability, (64, 96))
    # region rows 10..20, columns 20..60 after the 2x2 dilation; grown by 40 * 10 * 1.6 / 100 = 6.4 on every side
    assert boxes.tolist() == [[[14, 4], [66, 4], [66, 26], [14, 26]]]
    assert scores[0] == pytest.approx(0.9 * 400 / (11 * 41))  # the rectangle's map pixels, dilation rim included
    doubled, _ = text_boxes(probability, (128, 192))
    assert doubled.tolist() == [[[27, 7], [133, 7], [133, 53], [27, 53]]]  # 13.6 * 2 = 27.2 rounds to 27, ...


def test_faint_thin_and_tiny_regions_are_dropped():
    probability = np.zeros((64, 96), np.float32)
    probability[5:15, 5:50] = 0.45  # above thresh 0.3, below box_thresh 0.5
    probability[30, 5:80] = 0.95  # one row: 2 pixel centres high after dilation (< min_size 3)
    probability[50:52, 60:62] = 0.95
    boxes, scores = text_boxes(probability, (64, 96))
    assert boxes.shape == (0, 4, 2) and scores.shape == (0,)
    assert len(text_boxes(probability, (64, 96), settings=DBSettings(box_thresh=0.3))[0]) == 1


def test_a_tilted_line_gets_a_tilted_box_around_it():
    ys, xs = np.mgrid[0:100, 0:160]
    angle = np.deg2rad(15)
    along = (xs - 80) * np.cos(angle) + (ys - 50) * np.sin(angle)
    across = -(xs - 80) * np.sin(angle) + (ys - 50) * np.cos(angle)
    probability = ((np.abs(along) < 50) & (np.abs(across) < 6)).astype(np.float32)
    (box,), _ = text_boxes(probability, (100, 160))
    top = box[1] - box[0]
    assert np.rad2deg(np.arctan2(top[1], top[0])) == pytest.approx(15, abs=2)
    assert box[:, 0].min() < 80 - 50 * np.cos(angle) and box[:, 0].max() > 80 + 50 * np.cos(angle)


def test_box_score_is_the_mean_inside_the_truncated_box():
    probability = np.arange(100, dtype=np.float32).reshape(10, 10)
    assert box_score(probability, np.array([[2.7, 3.2], [5.9, 3.2], [5.9, 4.9], [2.7, 4.9]])) == \
        pytest.approx(probability[3:5, 2:6].mean())


def test_reading_order_is_top_to_bottom_then_left_to_right_within_a_row():
    def box(x, y):
        return [[x, y], [x + 10, y], [x + 10, y + 5], [x, y + 5]]

    boxes = np.array([box(50, 40), box(0, 3), box(60, 0), box(0, 40), box(30, 45)], float)
    assert sorted_boxes(boxes) == [1, 2, 3, 4, 0]  # rows of boxes less than 10 pixels apart in y: left to right


def test_text_area_counts_overlaps_once():
    boxes = np.array([[[0, 0], [9, 0], [9, 9], [0, 9]], [[5, 0], [14, 0], [14, 9], [5, 9]]], float)
    assert text_area(boxes, (20, 20)) == pytest.approx(15 * 10 / 400)
    assert text_area(np.zeros((0, 4, 2)), (20, 20)) == 0.0
