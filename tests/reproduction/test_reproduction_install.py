"""Done-when of issue #10: ``refnet reproduce --preset quick`` runs from a normal (not editable)
install, from an empty folder, without the checkout on ``sys.path``.

Installing into a fresh venv would download the dependencies; instead the checkout is installed
with ``pip install --no-deps --no-build-isolation --target TMP`` for the running interpreter
(which has the dependencies) and run with ``PYTHONPATH=TMP`` from an empty folder. pip builds
from a copy of the package sources, so its build folders never land in the checkout.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
#: What ``setup.cfg`` needs to build the package.
BUILD_FILES = ("setup.cfg", "pyproject.toml", "README.md")
#: Read at import time: the autouse fixture of conftest.py removes it from each test's environment.
DATA_DIR = os.environ.get("REFNET_DATA_DIR")


def _mnist_available(env) -> str | None:
    """None if the quick preset can load MNIST (cached, or fetchable), else the reason why not."""
    probe = ("from refnet.datasets import load_dataset; load_dataset('mnist', 'test')")
    r = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                       timeout=600)
    return None if r.returncode == 0 else (r.stderr.strip().splitlines() or ["?"])[-1]


@pytest.mark.slow
def test_reproduce_quick_runs_from_a_non_editable_install(tmp_path):
    pytest.importorskip("pip")
    src, target, work = tmp_path / "src", tmp_path / "site", tmp_path / "empty"
    work.mkdir()
    shutil.copytree(CHECKOUT / "refnet", src / "refnet",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in BUILD_FILES:
        shutil.copy2(CHECKOUT / name, src / name)
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                        "--no-compile", "--quiet", "--target", str(target), str(src)],
                       capture_output=True, text=True, timeout=600, cwd=work)
    assert r.returncode == 0, r.stdout + r.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "REFNET_DATA_DIR")}
    env["PYTHONPATH"] = str(target)
    if DATA_DIR:
        env["REFNET_DATA_DIR"] = DATA_DIR
    where = subprocess.run([sys.executable, "-c", "import refnet; print(refnet.__file__)"],
                           env=env, cwd=work, capture_output=True, text=True, timeout=120)
    assert where.returncode == 0, where.stderr
    installed = Path(where.stdout.strip()).resolve()
    assert installed.is_relative_to(target.resolve()), f"refnet imported from {installed}"
    assert not installed.is_relative_to(CHECKOUT) and not installed.is_relative_to(src)
    why = _mnist_available(env)
    if why:
        pytest.skip(f"MNIST is not cached (set REFNET_DATA_DIR) and cannot be fetched: {why}")
    out = tmp_path / "x"
    r = subprocess.run([sys.executable, "-m", "refnet.cli", "reproduce", "--preset", "quick",
                        "--out", str(out)], env=env, cwd=work, capture_output=True, text=True,
                       timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = (out / "report.md").read_text()
    assert "refnet reproduction report (quick preset)" in report
    for name in ("duque_fig4", "duque_fig2", "duque_fig3", "semenova_fig3", "semenova_fig4",
                 "semenova_fig6"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0, name
    assert list(work.iterdir()) == [], "the run wrote into the working folder"
