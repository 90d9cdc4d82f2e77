"""Progress displays: tqdm on a terminal, plain lines at the 30 s / 10 % points in a batch job's log."""

import io

import pytest
from tqdm import tqdm

from mcrgpu.progress import LINE_EVERY_FRACTION, LINE_EVERY_SECONDS, PlainProgress, progress_bar


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_defaults_are_30_seconds_and_ten_percent_and_settable(monkeypatch):
    assert (LINE_EVERY_SECONDS, LINE_EVERY_FRACTION) == (30.0, 0.1)
    monkeypatch.setattr("mcrgpu.progress.LINE_EVERY_SECONDS", 1.0)
    clock, log = FakeClock(), io.StringIO()
    bar = progress_bar(1000, stream=log, clock=clock)
    clock.now += 1.0
    bar.update(1)
    assert log.getvalue().startswith("progress: 1/1000 it (0%), 1 it/s")


def test_a_terminal_gets_tqdm_and_a_file_gets_plain_lines():
    terminal = Terminal()
    with progress_bar(10, stream=terminal) as bar:
        assert isinstance(bar, tqdm)
        bar.update(10)
    assert "\r" in terminal.getvalue()
    log = io.StringIO()
    with progress_bar(10, stream=log) as bar:
        assert isinstance(bar, PlainProgress)
    disabled = progress_bar(10, stream=log, enabled=False)
    disabled.update(5)
    disabled.close()
    assert log.getvalue() == ""


def test_plain_lines_every_ten_percent_with_count_loss_rate_and_time_left():
    clock, log = FakeClock(), io.StringIO()
    with progress_bar(500, desc="reconstruct", stream=log, clock=clock) as bar:
        for i in range(1, 121):
            clock.now += 0.5  # 2 it/s: 10 % (50 evaluations) every 25 s, before 30 s pass
            bar.update(1)
            bar.set_postfix(loss=f"{1 / i:.4g}", best=f"{1 / i:.4g}", refresh=False)
    text = log.getvalue()
    assert "\r" not in text
    assert text.splitlines() == [
        "reconstruct: 50/500 it (10%), loss=0.02, best=0.02, 2 it/s, 00:25 elapsed, 03:45 left",
        "reconstruct: 100/500 it (20%), loss=0.01, best=0.01, 2 it/s, 00:50 elapsed, 03:20 left",
        "reconstruct: 120/500 it (24%), loss=0.008333, best=0.008333, 2 it/s, 01:00 elapsed, 03:10 left",
    ]


def test_plain_lines_every_30_seconds_when_ten_percent_takes_longer():
    clock, log = FakeClock(), io.StringIO()
    bar = PlainProgress(100, stream=log, clock=clock, unit="it", desc="stage 1")
    for _ in range(7):
        clock.now += 12.0  # 10 % takes 120 s: the 30 s rule writes
        bar.update(1)
        bar.set_postfix(loss=0.5)
    assert log.getvalue().splitlines() == [
        "stage 1: 3/100 it (3%), loss=0.5, 12 s/it, 00:36 elapsed, 19:24 left",
        "stage 1: 6/100 it (6%), loss=0.5, 12 s/it, 01:12 elapsed, 18:48 left",
    ]
    bar.close()
    bar.close()
    assert log.getvalue().splitlines()[-1] == "stage 1: 7/100 it (7%), loss=0.5, 12 s/it, 01:24 elapsed, 18:36 left"
    assert len(log.getvalue().splitlines()) == 3


def test_unknown_total_writes_every_30_seconds_with_singular_unit_per_second():
    clock, log = FakeClock(), io.StringIO()
    with progress_bar(unit=" rounds", desc="two-point polish", stream=log, clock=clock) as bar:
        for error in (0.05, 0.03, 0.02, 0.015):
            clock.now += 20.0
            bar.update()
            bar.set_postfix(s2_error=f"{error:.4f}")
    assert log.getvalue().splitlines() == [
        "two-point polish: 2 rounds, s2_error=0.0300, 20 s/round, 00:40 elapsed",
        "two-point polish: 4 rounds, s2_error=0.0150, 20 s/round, 01:20 elapsed",
    ]


def test_resumed_count_keeps_the_ten_percent_marks_and_rates_only_new_steps():
    clock, log = FakeClock(), io.StringIO()
    bar = PlainProgress(20, initial=7, stream=log, clock=clock, unit="item")
    for _ in range(3):
        clock.now += 0.25
        bar.update(1)  # no postfix: written at once
    assert log.getvalue().splitlines() == [
        "progress: 8/20 item (40%), 4 item/s, 00:00 elapsed, 00:03 left",
        "progress: 10/20 item (50%), 4 item/s, 00:00 elapsed, 00:02 left",
    ]


@pytest.mark.parametrize("every_seconds, every_fraction, counts", [
    (1000.0, 0.5, [4, 8]), (1000.0, 0.25, [2, 4, 6, 8]), (3.0, 0.5, [3, 4, 7, 8]),
])
def test_intervals_are_settable(every_seconds, every_fraction, counts):
    clock, log = FakeClock(), io.StringIO()
    with PlainProgress(8, stream=log, clock=clock, every_seconds=every_seconds,
                       every_fraction=every_fraction) as bar:
        for _ in range(8):
            clock.now += 1.0
            bar.update(1)
    assert [line.split("/")[0] for line in log.getvalue().splitlines()] == [f"progress: {n}" for n in counts]


def test_rate_and_time_left_come_from_the_steps_since_the_previous_line():
    clock, log = FakeClock(), io.StringIO()
    bar = PlainProgress(20, stream=log, clock=clock, desc="reconstruct")
    for seconds in (20.0, 1.0, 1.0, 1.0):  # the first evaluation traces and compiles
        clock.now += seconds
        bar.update(1)
    assert log.getvalue().splitlines() == [
        "reconstruct: 2/20 it (10%), 10.5 s/it, 00:21 elapsed, 03:09 left",
        "reconstruct: 4/20 it (20%), 1 it/s, 00:23 elapsed, 00:16 left",
    ]
