"""available_cores: the CPU affinity, capped by the CPU quotas of the process's cgroup and of
every cgroup above it, read from fake /proc/self/cgroup files and cgroup trees (the real
machine's cgroup plays no part)."""
import os

import pytest

from refnet.cores import available_cores

HOST_CORES = 64


@pytest.fixture(autouse=True)
def host_of_64_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(HOST_CORES)),
                        raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: HOST_CORES)


def _cores(tmp_path, own, files):
    """available_cores for a process whose /proc/self/cgroup reads ``own`` (None: absent), in
    a cgroup tree holding ``files`` ({path under the mount root: text})."""
    root, proc = tmp_path / "sys-fs-cgroup", tmp_path / "proc-self-cgroup"
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")
    if own is not None:
        proc.write_text(own)
    return available_cores(proc_cgroup=str(proc), cgroup_root=str(root))


V2_OWN = "0::/\n"  # a container with its own cgroup namespace: its cgroup is the mount's root


@pytest.mark.parametrize("v2, expected", [
    ("200000 100000", 2),      # a container given 2 CPUs saw the host's 64
    ("150000 100000", 2),      # 1.5 CPUs: rounded up
    ("50000 100000", 1),
    ("12800000 100000", 64),   # a quota above the affinity: the affinity
    ("max 100000", 64),        # no quota
    ("", 64), ("200000", 64), ("x 100000", 64), ("200000 0", 64),  # not a quota
])
def test_cgroup_v2_quota_caps_the_cores(v2, expected, tmp_path):
    assert _cores(tmp_path, V2_OWN, {"cpu.max": v2}) == expected


@pytest.mark.parametrize("quotas, expected", [
    ({"a/b": "200000 100000"}, 2),                                  # its own cgroup's quota
    ({"a": "200000 100000", "a/b": "max 100000"}, 2),               # its parent's
    ({"a": "300000 100000", "a/b": "150000 100000"}, 2),            # the smaller of the two
    ({"a": "100000 100000", "a/b": "400000 100000"}, 1),            # the parent's is smaller
    ({"": "300000 100000", "a/b": "max 100000"}, 3),                # the root's
    ({"a/b/c": "100000 100000", "x": "100000 100000"}, 64),         # not on its path
])
def test_cgroup_v2_nested_cgroup_takes_the_smallest_quota_of_its_ancestors(quotas, expected,
                                                                           tmp_path):
    """A process in /a/b (a systemd service, a job step) saw only the mount root's cpu.max."""
    files = {os.path.join(folder, "cpu.max"): text for folder, text in quotas.items()}
    assert _cores(tmp_path, "0::/a/b\n", files) == expected


def test_cgroup_v2_path_outside_the_mount_falls_back_to_the_root(tmp_path):
    """A container without a cgroup namespace: /proc/self/cgroup names the host's path, the
    mount is the container's own cgroup, whose cpu.max is at its root."""
    assert _cores(tmp_path, "0::/docker/3f2a\n", {"cpu.max": "200000 100000"}) == 2


@pytest.mark.parametrize("own", ["0::/../..\n", "0::relative\n"])
def test_cgroup_path_that_leaves_the_mount_is_not_followed(own, tmp_path):
    (tmp_path / "cpu.max").write_text("100000 100000\n")  # beside the fake mount, not in it
    assert _cores(tmp_path, own, {"cpu.max": "200000 100000"}) == 2


V1_QUOTA = ("cpu.cfs_quota_us", "cpu.cfs_period_us")


def _v1_files(folder, quota, period):
    return {os.path.join(folder, name): text
            for name, text in zip(V1_QUOTA, (quota, period)) if text is not None}


@pytest.mark.parametrize("v1, expected", [
    (("200000", "100000"), 2),
    (("-1", "100000"), 64),     # cgroup v1's "no quota"
    (("200000", None), 64),     # a quota without its period
    ((None, None), 64),         # no cgroup files at all
])
def test_cgroup_v1_quota_caps_the_cores(v1, expected, tmp_path):
    assert _cores(tmp_path, "4:cpu,cpuacct:/\n", _v1_files("cpu", *v1)) == expected


def test_cgroup_v1_nested_cgroup_takes_the_smallest_quota_of_its_ancestors(tmp_path):
    files = {**_v1_files("cpu/a", "200000", "100000"), **_v1_files("cpu/a/b", "-1", "100000"),
             **_v1_files("cpu/x", "100000", "100000")}  # not on its path
    own = "5:memory:/elsewhere\n4:cpu,cpuacct:/a/b\n3:cpuset:/\n"
    assert _cores(tmp_path, own, files) == 2


def test_cgroup_v1_controller_folder_without_the_cpu_link(tmp_path):
    assert _cores(tmp_path, "4:cpu,cpuacct:/a\n",
                  _v1_files("cpu,cpuacct/a", "300000", "100000")) == 3


def test_hybrid_cgroups_follow_the_v1_cpu_controller(tmp_path):
    """systemd's hybrid setup: the cpu controller on v1, an empty v2 hierarchy beside it."""
    own = "4:memory:/m\n1:cpu:/a\n0::/a\n"
    assert _cores(tmp_path, own, _v1_files("cpu/a", "200000", "100000")) == 2


def test_without_proc_self_cgroup_the_mount_roots_are_read(tmp_path):
    assert _cores(tmp_path, None, {"cpu.max": "200000 100000"}) == 2
    assert _cores(tmp_path / "v1", None, _v1_files("cpu", "300000", "100000")) == 3


def test_unreadable_cgroup_files_mean_no_quota(tmp_path):
    root = tmp_path / "root"
    (root / "cpu.max").mkdir(parents=True)  # open() fails: IsADirectoryError
    (root / "cpu").mkdir()
    (root / "cpu" / "cpu.cfs_quota_us").write_bytes(b"\xff\xfe")  # not text
    (root / "cpu" / "cpu.cfs_period_us").write_text("100000")
    for own in (b"0::/\n1:cpu:/\n", b"\xff\xfe0::/\n"):  # the second: /proc/self/cgroup too
        (tmp_path / "own").write_bytes(own)
        assert available_cores(proc_cgroup=str(tmp_path / "own"), cgroup_root=str(root)) == 64


def test_the_sweep_and_evaluate_count_the_same_cores():
    """refnet.sweep.executors keeps the name its callers (and tests) import."""
    from refnet.sweep import executors

    assert executors.available_cores is available_cores
