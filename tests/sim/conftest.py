from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def collected(tmp_path_factory):
    """2 reach-v3 + 2 push-v3 expert demos with 64 px corner2 images (about 10 s)."""
    from atlas.sim import collect

    path = tmp_path_factory.mktemp("sim") / "demos.hdf5"
    result = collect("reach-v3,push-v3", 2, path, image_size=64, cameras="corner2", seed=0, progress=False)
    return path, result
