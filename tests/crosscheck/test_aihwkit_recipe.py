"""The aihwkit recipe (examples/aihwkit_crosscheck.py): runs when aihwkit is importable, skips
cleanly otherwise. The statistical mode must pass aihwkit with one tile per layer against
refnet's additive noise before the activation, flag the default two-tile mapping of a
784-input layer (noise variance doubled there), and pass it against refnet with that layer's
variance doubled (a per-layer NoiseConfig)."""
import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "aihwkit_crosscheck.py"


@pytest.mark.torch
def test_aihwkit_one_tile_passes_two_tiles_flagged(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    pytest.importorskip("aihwkit")
    spec = importlib.util.spec_from_file_location("aihwkit_crosscheck_example", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--out", str(tmp_path), "--repeats", "200", "--inputs", "20",
                     "--hidden", "32"]) == 0
    out = capsys.readouterr().out
    assert out.count("verdict: consistent") == 2 and out.count("verdict: DIFFER") == 2
