"""Recipe: cross-check IBM aihwkit's inference noise against refnet (statistical mode).

aihwkit draws its own random numbers, so the bundle mode cannot give it draws; the
statistical mode compares distributions instead (``refnet crosscheck stat``). The mapping of
settings (docs/aihwkit.md explains each):

=========================================  =================================================
refnet                                     aihwkit 1.1.0 (``TorchInferenceRPUConfig``)
=========================================  =================================================
additive uncorrelated noise of variance    ``forward.out_noise = s`` (a standard deviation)
``s**2`` on every weight layer's ``z``     on each tile's output, i.e. on ``W x`` before the
(``--layers 1,2,3 --position pre``)        digital bias and the activation
no quantisation                            ``forward.inp_res = forward.out_res = -1``
no clipping                                ``forward.inp_bound = forward.out_bound = -1``
no input/output rescaling                  ``noise_management = bound_management = NONE``
one noise draw per layer                   ``mapping.max_input_size = max_output_size = 0``
=========================================  =================================================

The trap: at the default ``max_input_size = 512`` a 784-input layer is split over two tiles
(392 inputs each) and each tile adds its own ``out_noise``: that layer's noise variance is
``2 s**2``, not ``s**2``. refnet models it exactly with a per-layer variance
(``--layer-variances 1:add_unc=2s^2``), and the statistical mode tells the two apart.

Run: ``python examples/aihwkit_crosscheck.py [--out DIR]`` (needs aihwkit, torch, safetensors).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np


def rpu_config(out_noise_std: float, *, one_tile: bool = True):
    """aihwkit settings equal to refnet's additive uncorrelated noise before the activation."""
    from aihwkit.simulator.configs import TorchInferenceRPUConfig
    from aihwkit.simulator.parameters import BoundManagementType, NoiseManagementType

    c = TorchInferenceRPUConfig()
    c.forward.out_noise = float(out_noise_std)  # a standard deviation: variance s**2
    c.forward.inp_res = c.forward.out_res = -1  # infinite resolution (no DAC/ADC steps)
    c.forward.inp_bound = c.forward.out_bound = -1  # no clipping
    c.forward.noise_management = NoiseManagementType.NONE
    c.forward.bound_management = BoundManagementType.NONE
    if one_tile:  # one tile per layer, so one noise draw per output
        c.mapping.max_input_size = 0
        c.mapping.max_output_size = 0
    return c


def aihwkit_samples(analog_net, X, K: int, seed: int) -> dict:
    """K noisy repeats of the T inputs ``X`` through ``analog_net`` (an ``AnalogSequential`` of
    Linear, Sigmoid, ..., Linear), aihwkit drawing the noise: ``{l: (K, T, n_l)}`` for every
    weight layer's output."""
    import torch

    torch.manual_seed(seed)
    T = X.shape[0]
    a = torch.from_numpy(X).float().repeat(K, 1)  # rows (repeat, input)
    outs = []
    with torch.no_grad():
        for i, m in enumerate(analog_net):
            a = m(a)
            if isinstance(m, torch.nn.Sigmoid) or i == len(analog_net) - 1:
                outs.append(a.double().numpy().reshape(K, T, -1))
    return {l: v for l, v in enumerate(outs, start=1)}


def main(argv=None) -> int:
    import torch
    from aihwkit.nn.conversion import convert_to_analog
    from safetensors.numpy import save_file as save_numpy
    from safetensors.torch import save_file

    from refnet.cli import main as refnet

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="working folder (default: a temporary one)")
    ap.add_argument("--repeats", type=int, default=300, help="K, noisy repeats per input")
    ap.add_argument("--inputs", type=int, default=30, help="T, inputs")
    ap.add_argument("--hidden", type=int, default=64, help="hidden width (784-H-H-10)")
    ap.add_argument("--std", type=float, default=0.1, help="aihwkit out_noise (a std)")
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="refnet-aihwkit-"))
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    H = args.hidden
    net = torch.nn.Sequential(torch.nn.Linear(784, H), torch.nn.Sigmoid(), torch.nn.Linear(H, H),
                              torch.nn.Sigmoid(), torch.nn.Linear(H, 10))
    save_file(net.state_dict(), str(out / "model.safetensors"))
    g = np.random.default_rng(1)
    X, y = g.random((args.inputs, 784)), g.integers(0, 10, args.inputs)  # pixel-like inputs
    v = args.std ** 2
    noise = ["--layers", "1,2,3", "--position", "pre", "--variances", f"add_unc={v:.12g}"]
    bundles = {"s^2 everywhere": out / "bundle.safetensors",
               "2 s^2 on layer 1": out / "bundle_two_tiles.safetensors"}
    codes = {}
    for (name, path), extra in zip(bundles.items(), ([], ["--layer-variances", f"1:add_unc={2 * v:.12g}"])):
        codes[f"make {name}"] = refnet(["crosscheck", "make", str(out / "model.safetensors"),
                                        "-o", str(path), *noise, *extra])
    for tiles, one_tile in (("one tile", True), ("two tiles (default mapping)", False)):
        analog = convert_to_analog(net, rpu_config(args.std, one_tile=one_tile)).eval()
        S = aihwkit_samples(analog, X, args.repeats, seed=3)
        samples = out / f"samples_{'one' if one_tile else 'two'}.safetensors"
        save_numpy({"input": X, "label": y, **{f"samples.layer.{l}": s for l, s in S.items()}},
                   str(samples))
        for name, path in bundles.items():
            print(f"\n== aihwkit {tiles} against refnet with {name}")
            codes[f"stat {tiles} vs {name}"] = refnet(["crosscheck", "stat", str(path),
                                                       "--samples", str(samples)])
    print("\nexit codes:", codes)
    want = {"make s^2 everywhere": 0, "make 2 s^2 on layer 1": 0,
            "stat one tile vs s^2 everywhere": 0, "stat one tile vs 2 s^2 on layer 1": 1,
            "stat two tiles (default mapping) vs s^2 everywhere": 1,
            "stat two tiles (default mapping) vs 2 s^2 on layer 1": 0}
    return 0 if codes == want else 1


if __name__ == "__main__":
    sys.exit(main())
