"""Fixtures of the image-task tests: photographs and the small test models, made once per session."""

import pytest

from .support import GridModel, PairModel, export, write_photos


@pytest.fixture(scope="session")
def photos(tmp_path_factory):
    return write_photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="session")
def pair_model(tmp_path_factory):
    return export(PairModel(), tmp_path_factory.mktemp("models") / "pair")


@pytest.fixture(scope="session")
def grid_model(tmp_path_factory):
    return export(GridModel(), tmp_path_factory.mktemp("models") / "grid")
