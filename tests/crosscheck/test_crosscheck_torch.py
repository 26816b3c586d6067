"""The cross-check against PyTorch: the worked example end to end, and torch filling bundles
of every noise placement (float64 within 1e-9, float32 within its stated tolerance)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import refnet as rn
from refnet.crosscheck import check_results, make_bundle
from refnet.noise import NoiseConfig, NoiseSpec

pytestmark = pytest.mark.torch
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "torch_crosscheck.py"


def _example():
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    spec = importlib.util.spec_from_file_location("torch_crosscheck_example", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("noise", [
    NoiseConfig(NoiseSpec(0.02, 0.01, 0.03, 0.02), (1, 2), "post", {2: NoiseSpec(add_unc=0.1)}),
    NoiseConfig(NoiseSpec(0.02, 0.01, 0.03, 0.02), (0, 1, 2, 3), "pre"),
    rn.noise_config("semenova", NoiseSpec(add_unc=0.01, mul_unc=0.02), 3),
    None], ids=["post-per-layer", "pre-all", "semenova", "clean"])
def test_torch_fills_every_bundle_within_tolerance(noise):
    ex = _example()
    import torch

    arch = rn.mlp((7, 9, 6, 4))
    p = rn.init_params(arch, rng=1)
    g = np.random.default_rng(2)
    arrays, meta = make_bundle(arch, p, g.random((10, 7)), g.integers(0, 4, 10), noise=noise,
                               seed=3, step_regularizers=("eq4_code", "eq7_code"))
    for dtype in (torch.float64, torch.float32):
        rows = check_results({**arrays, **ex.fill_bundle(arrays, meta, dtype)})
        assert len(rows) == 52 and all(r.status == "pass" for r in rows), \
            [(r.name, r.max_rel) for r in rows if r.status != "pass"]
    # and the check sees a torch that forgets one layer's own variance
    wrong = dict(meta, noise=dict(meta["noise"], specs={k: dict(v, add_unc=2 * v["add_unc"])
                                                        for k, v in meta["noise"]["specs"].items()}))
    if noise is not None:
        rows = check_results({**arrays, **ex.fill_bundle(arrays, wrong)})
        assert any(r.status == "FAIL" and r.name.startswith("layer.") for r in rows)


def test_worked_example_runs_end_to_end(tmp_path, capsys):
    ex = _example()
    assert ex.main(["--out", str(tmp_path), "--repeats", "300", "--inputs", "30"]) == 0
    out = capsys.readouterr().out
    assert "verdict: consistent" in out and "verdict: DIFFER" in out
    assert (tmp_path / "model.safetensors").is_file()


def test_readme_path_from_a_torch_state_dict_to_the_table(tmp_path, capsys):
    """The README's lines: make from a torch state dict, the example fills, check passes."""
    ex = _example()
    from safetensors.torch import save_file

    from refnet.cli import main

    net = ex.sequential((12, 10, 10, 5)).double()
    save_file(net.state_dict(), str(tmp_path / "model.safetensors"))
    b = str(tmp_path / "bundle.safetensors")
    assert main(["crosscheck", "make", str(tmp_path / "model.safetensors"), "-o", b,
                 "--variances", "add_unc=0.01"]) == 0
    assert ex.main(["fill", b]) == 0
    assert main(["crosscheck", "check", b]) == 0
    assert "52 tensors within tolerance, 0 outside, 0 not provided" in capsys.readouterr().out
    assert ex.main(["fill", b, "--dtype", "float32"]) == 0
    assert main(["crosscheck", "check", b]) == 0
    assert main(["crosscheck", "check", b, "--dtype", "float64"]) == 1  # float32 is not float64
