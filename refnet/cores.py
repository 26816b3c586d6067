"""How many cores this process may keep busy, for the default sizes of worker pools.

One function for every command that sizes a pool (the sweep's worker processes, evaluate's
worker threads), so that they agree. Only the standard library: the command line's flag
parsers call it at start-up.
"""
from __future__ import annotations

import os
from pathlib import PurePosixPath

__all__ = ["available_cores", "CGROUP_ROOT", "PROC_SELF_CGROUP"]

#: Where the cgroup file systems are mounted: cgroup v2's one hierarchy at the root, cgroup
#: v1's cpu controller in ``cpu/`` (a link to ``cpu,cpuacct/`` on most systems).
CGROUP_ROOT = "/sys/fs/cgroup"
#: The process's own cgroups, one line per hierarchy: ``ID:CONTROLLERS:PATH``; cgroup v2's
#: line is ``0::PATH``.
PROC_SELF_CGROUP = "/proc/self/cgroup"


def available_cores(*, proc_cgroup: str | None = None, cgroup_root: str | None = None) -> int:
    """The cores this process may keep busy: those it may run on (its CPU affinity), fewer if
    its cgroup, or any cgroup above it, has a CPU quota.

    The affinity alone took a container given 2 CPUs of a 64-core host for 64 cores: 64
    workers time-sliced on 2 CPUs. ``proc_cgroup`` and ``cgroup_root`` stand in for
    :data:`PROC_SELF_CGROUP` and :data:`CGROUP_ROOT` (read when the function is called).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cpus(PROC_SELF_CGROUP if proc_cgroup is None else proc_cgroup,
                         CGROUP_ROOT if cgroup_root is None else cgroup_root)
    return cores if quota is None else min(cores, quota)


def _cgroup_cpus(proc_cgroup: str, root: str) -> int | None:
    """The fewest CPUs any CPU bandwidth limit on this process's cgroups allows, or None.

    A cgroup's limit applies to everything below it, so a nested cgroup (a systemd service, a
    job step, a container without a cgroup namespace) may use the smallest quota of itself and
    its ancestors. The quota was read at the mount's root only: a process in a nested cgroup
    with a quota saw none. The root is always read too, which also covers a container whose
    mount is its own cgroup while /proc/self/cgroup names the host's path to it. Every limit
    found is a limit: the cpu controller's v1 path and the v2 path are both followed (a
    hybrid system has both; each folder holds the files of its own version only).
    """
    v1, v2 = _own_cgroups(proc_cgroup)
    if v1 is None and v2 is None:  # no /proc/self/cgroup to follow: the mounts' roots
        v1, v2 = ("cpu", "/"), "/"
    folders = []
    if v1 is not None:  # the cpu controller on cgroup v1: mounted as cpu/ (or cpu,cpuacct/)
        controllers, path = v1
        for mount in dict.fromkeys(("cpu", controllers)):
            folders += [(_v1_cpus, d) for d in _ancestors(os.path.join(root, mount), path)]
    if v2 is not None:
        folders += [(_v2_cpus, d) for d in _ancestors(root, v2)]
    return min((n for n in (read(d) for read, d in folders) if n is not None), default=None)


def _own_cgroups(proc_cgroup: str) -> tuple[tuple[str, str] | None, str | None]:
    """From /proc/self/cgroup: ``(controllers, path)`` of the cgroup v1 hierarchy holding the
    cpu controller, and the cgroup v2 path; each None where there is none."""
    try:
        with open(proc_cgroup, encoding="utf-8") as f:
            text = f.read(1 << 16)
    except (OSError, ValueError):  # absent (not Linux), unreadable, not text
        return None, None
    v1 = v2 = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and not controllers:
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = controllers, path
    return v1, v2


def _ancestors(root: str, path: str) -> list[str]:
    """``root/path`` and each folder above it up to ``root`` itself. A path that climbs out
    (``..``) or is not absolute is taken for the root alone."""
    parts = PurePosixPath(path).parts
    if not parts or parts[0] != "/" or ".." in parts:
        return [root]
    parts = parts[1:]
    return [os.path.join(root, *parts[:n]) for n in range(len(parts), -1, -1)]


def _v2_cpus(folder: str) -> int | None:
    """cgroup v2's ``cpu.max`` ("QUOTA PERIOD", or "max PERIOD" for none) in ``folder``."""
    words = _words(os.path.join(folder, "cpu.max"))
    return _cpus(*words) if words is not None and len(words) == 2 else None


def _v1_cpus(folder: str) -> int | None:
    """cgroup v1's ``cpu.cfs_quota_us`` and ``cpu.cfs_period_us`` in ``folder`` (a quota of -1
    is none)."""
    quota, period = (_words(os.path.join(folder, f"cpu.cfs_{name}_us"))
                     for name in ("quota", "period"))
    if quota and period and len(quota) == len(period) == 1:
        return _cpus(quota[0], period[0])
    return None


def _words(path: str) -> list[str] | None:
    """The words of a small kernel file, or None if it cannot be read."""
    try:
        with open(path, encoding="ascii") as f:
            return f.read(256).split()
    except (OSError, ValueError):  # absent, a folder, no permission; not ASCII text
        return None


def _cpus(quota: str, period: str) -> int | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:  # "max": no quota
        return None
    if q <= 0 or p <= 0:  # -1: no quota (cgroup v1)
        return None
    return -(-q // p)  # rounded up: 1.5 CPUs are used in full only by 2 workers
