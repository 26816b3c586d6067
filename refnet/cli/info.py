"""``refnet info``: show a saved model's architecture and metadata; export PyTorch keys."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError
from ._common import existing_file


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=existing_file("a model .npz written by refnet"),
                   help="a model .npz written by refnet")
    p.add_argument("--json", action="store_true", help="print the whole metadata as JSON")
    p.add_argument("--export-state-dict", type=Path, metavar="FILE",
                   help="write the weights under PyTorch state_dict key names to FILE, "
                        ".safetensors or .npz (tensors only: loads with "
                        "load_state_dict(strict=True); metadata in the safetensors header or "
                        "in FILE.json beside the .npz)")
    p.add_argument("--naming", choices=("sequential", "fc", "h"),
                   help="key scheme of --export-state-dict: sequential (0., 2., ...; the "
                        "default), fc (fc1., ...) or h (h1., ...)")


def _strict_json(meta: dict, path) -> str:
    """``meta`` as JSON that any reader accepts: a NaN or infinity (saved by an older refnet)
    was printed as ``NaN``/``Infinity``, which is not JSON."""
    from ..errors import ModelFileError
    from ..npzfile import first_nonfinite

    bad = first_nonfinite(meta)
    if bad is not None:
        raise ModelFileError(f"{path}: metadata {bad[0]} is {bad[1]}, which JSON cannot hold, "
                             "so --json cannot print it; run refnet info without --json, or "
                             "save the model again with a finite value there")
    return json.dumps(meta, indent=2, sort_keys=True, allow_nan=False)


def run(args) -> int:
    import numpy as np

    from refnet.io import load_model
    from refnet.statedict import check_destination, save_state_dict

    if args.naming and not args.export_state_dict:
        raise ConfigError("--naming needs --export-state-dict FILE (it names the exported keys)")
    naming = args.naming or "sequential"
    if args.export_state_dict:  # before any work: a folder or an unwritable place is refused
        check_destination(args.export_state_dict, "--export-state-dict",
                          inputs={args.model: "model"})
    arch, params, meta = load_model(args.model)
    if args.json:
        print(_strict_json(meta, args.model))
    else:
        print(f"{args.model}: refnet {meta.get('refnet_version')} model, dtype {meta.get('dtype')}")
        print(f"  layers {'-'.join(map(str, arch.sizes))}, activations {', '.join(arch.activations)}"
              f", biases {'trained' if arch.train_biases else 'frozen'}")
        for key in ("seed", "test_accuracy"):
            if key in meta:
                print(f"  {key}: {meta[key]}")
        for l, w in enumerate(params.W, start=1):
            print(f"  W{l} {w.shape}: mean {w.mean():+.4g}, std {w.std():.4g}, "
                  f"mean |row sum| {np.abs(w.sum(axis=1)).mean():.4g}")
    if args.export_state_dict:
        save_state_dict(args.export_state_dict, arch, params, naming,
                        {"source_model": str(args.model)})
        print(f"state_dict arrays written to {args.export_state_dict}")
    return 0
