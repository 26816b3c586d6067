"""available_cores: the CPU affinity, capped by the cgroup's CPU quota, read from fake cgroup
files (the real machine's cgroup plays no part)."""
import os

import pytest

from refnet.sweep.executors import available_cores

HOST_CORES = 64


@pytest.fixture(autouse=True)
def host_of_64_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(HOST_CORES)),
                        raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: HOST_CORES)


def _cores(tmp_path, v2=None, v1=()):
    """available_cores with cgroup v2's cpu.max holding ``v2`` and v1's quota and period
    files holding ``v1`` (a file whose text is None is absent)."""
    paths = [tmp_path / "cpu.max", tmp_path / "cpu.cfs_quota_us", tmp_path / "cpu.cfs_period_us"]
    for path, text in zip(paths, (v2, *v1)):
        if text is not None:
            path.write_text(text + "\n")
    return available_cores(str(paths[0]), (str(paths[1]), str(paths[2])))


@pytest.mark.parametrize("v2, expected", [
    ("200000 100000", 2),      # a container given 2 CPUs saw the host's 64
    ("150000 100000", 2),      # 1.5 CPUs: rounded up
    ("50000 100000", 1),
    ("12800000 100000", 64),   # a quota above the affinity: the affinity
    ("max 100000", 64),        # no quota
    ("", 64), ("200000", 64), ("x 100000", 64), ("200000 0", 64),  # not a quota
])
def test_cgroup_v2_quota_caps_the_cores(v2, expected, tmp_path):
    assert _cores(tmp_path, v2) == expected


@pytest.mark.parametrize("v1, expected", [
    (("200000", "100000"), 2),
    (("-1", "100000"), 64),     # cgroup v1's "no quota"
    (("200000", None), 64),     # a quota without its period
    ((None, None), 64),         # no cgroup files at all
])
def test_cgroup_v1_quota_caps_the_cores(v1, expected, tmp_path):
    assert _cores(tmp_path, None, v1) == expected


def test_cgroup_v2_is_read_instead_of_v1(tmp_path):
    assert _cores(tmp_path, "max 100000", ("200000", "100000")) == 64


def test_unreadable_cgroup_files_mean_no_quota(tmp_path):
    (tmp_path / "cpu.max").mkdir()  # open() fails: IsADirectoryError
    (tmp_path / "cpu.cfs_quota_us").write_bytes(b"\xff\xfe")  # not text
    (tmp_path / "cpu.cfs_period_us").write_text("100000")
    assert available_cores(str(tmp_path / "cpu.max"), (str(tmp_path / "cpu.cfs_quota_us"),
                                                        str(tmp_path / "cpu.cfs_period_us"))) == 64
