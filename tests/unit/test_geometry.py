"""Screenshot pixels <-> device coordinates, at scale 1 and 2, offset and downscaled."""

from __future__ import annotations

import pytest

from tools.executor import Geometry

CASES = [
    ("identity", Geometry.identity(1280, 720), (100, 50), (100, 50)),
    ("hidpi-2", Geometry((2560, 1440), (1280, 720)), (200, 100), (100, 50)),
    ("monitor-offset", Geometry((1920, 1080), (1920, 1080), offset=(1920, 0)), (10, 20), (1930, 20)),
    ("downscaled", Geometry((960, 540), (1920, 1080)), (480, 270), (960, 540)),
    ("hidpi-offset", Geometry((3840, 2160), (1920, 1080), offset=(-1920, 300)), (2, 4), (-1919, 302)),
]


@pytest.mark.parametrize(("name", "geometry", "shot", "device"), CASES, ids=[c[0] for c in CASES])
def test_points_map_both_ways(name, geometry, shot, device):
    assert geometry.to_device(*shot) == pytest.approx(device)
    assert geometry.to_screenshot(*device) == pytest.approx(shot)
