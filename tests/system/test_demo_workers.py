"""How many worker processes `camera-hub demo` (and city_scale) starts by default."""

from camera_hub.demo import default_workers


def test_one_worker_per_500_cameras_at_most_one_per_core():
    assert default_workers(44, cores=2) == 1
    assert default_workers(500, cores=2) == 1
    assert default_workers(1004, cores=2) == 2
    assert default_workers(1004, cores=1) == 1  # never more processes than cores
    assert default_workers(5000, cores=16) == 10
    assert default_workers(1, cores=None) == 1
