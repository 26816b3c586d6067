"""Worked example: cross-check a PyTorch implementation of a noisy analog network with refnet.

1. Train a small noisy net in torch: noise-aware training (additive uncorrelated noise after
   each hidden sigmoid, the contract of refnet.noise) with the Duque regularizer (Duque 2024,
   Eq. 7, p. 5, the authors' code variant: batch sum of f'(z^(2)) plus weight norms).
2. Export its ``state_dict`` as ``model.safetensors`` (safetensors' torch API).
3. Bundle mode: ``refnet crosscheck make model.safetensors -o bundle.safetensors``; torch fills
   in every answer from the bundle's explicit draws (:func:`fill_bundle`, in float64 and in
   float32); ``refnet crosscheck check`` prints the table and exits 0 on a pass.
4. Statistical mode: torch draws its own noise (its own generator) for K repeats of T inputs
   (:func:`torch_samples`); ``refnet crosscheck stat`` compares the distributions with refnet's
   Monte-Carlo. A deliberately wrong simulator (noise variance 10 % too high) is flagged.

Run: ``python examples/torch_crosscheck.py [--out DIR]`` (needs torch and safetensors), or
``python examples/torch_crosscheck.py fill BUNDLE`` to fill any bundle of an ``nn.Sequential``
of Linear and Sigmoid layers with torch's answers (between ``refnet crosscheck make`` and
``check``). The
torch code here is written from the bundle's documented contents and the papers, not from
refnet's functions: it is what a framework user would write.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ACT = {"sigmoid": torch.sigmoid, "identity": lambda z: z}


def sequential(sizes) -> torch.nn.Sequential:
    """Linear, Sigmoid, ..., Linear: state-dict keys 0., 2., 4., ..."""
    layers = []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        layers.append(torch.nn.Linear(n_in, n_out))
        if l < len(sizes) - 1:
            layers.append(torch.nn.Sigmoid())
    return torch.nn.Sequential(*layers)


def eq3_noise(x, v: dict, xi: dict):
    """y = x (1 + sqrt(v_MU) xi_MU)(1 + sqrt(v_MC) xi_MC) + sqrt(v_AU) xi_AU + sqrt(v_AC) xi_AC
    (Semenova 2022, Eq. 3, p. 3); ``v`` variances, ``xi`` standard normals (absent = 0)."""
    y = x
    for t in ("mul_unc", "mul_cor"):
        if v.get(t, 0) > 0:
            y = y * (1 + math.sqrt(v[t]) * xi[t])
    for t in ("add_unc", "add_cor"):
        if v.get(t, 0) > 0:
            y = y + math.sqrt(v[t]) * xi[t]
    return y


def noisy_forward(net, activations, x, noise: dict, draw):
    """Layer outputs ``A[0..L]`` and pre-activations ``Z[1..L]`` (those fed to f) of ``net``
    with noise ``{"layers", "position", "specs"}``; ``draw(l, shape)`` gives the standard
    normals of layer ``l`` as a dict by source."""
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    specs = {int(k): v for k, v in noise["specs"].items()}
    pre = noise["position"] == "pre"
    a = eq3_noise(x, specs[0], draw(0, x.shape)) if 0 in specs else x
    A, Z = [a], []
    for l, (lin, act) in enumerate(zip(linears, activations), start=1):
        z = lin(a)
        if l in specs and pre:
            z = eq3_noise(z, specs[l], draw(l, z.shape))
        a = ACT[act](z)
        if l in specs and not pre:
            a = eq3_noise(a, specs[l], draw(l, a.shape))
        A.append(a)
        Z.append(z)
    return A, Z


def regularizer(spec: dict, net, Z, activations):
    """Duque 2024, Eq. 4 (``row_sum``) or Eq. 7 (``saturation``) with resolved layers 1..L."""
    W = [m.weight for m in net if isinstance(m, torch.nn.Linear)]
    if spec["kind"] == "row_sum":  # sum_l lambda_l sum_i |sum_j w_ij^(l)|
        return sum(lam * W[int(l) - 1].sum(dim=1).abs().sum() for l, lam in spec["lambdas"].items())
    R = 0
    for l, lam in spec["derivative_lambdas"].items():  # lambda red_b sum_i f'(z_bi^(l))^p
        z = Z[int(l) - 1]
        (fp,) = torch.autograd.grad(ACT[activations[int(l) - 1]](z).sum(), z, create_graph=True)
        s = (fp ** spec["power"]).sum()
        R = R + lam * (s / z.shape[0] if spec["reduction"] == "mean" else s)
    for l, lam in spec["weight_lambdas"].items():  # lambda ||W^(l)||_F^2
        R = R + lam * W[int(l) - 1].square().sum()
    return R


def fill_bundle(bundle: dict, meta: dict, dtype=torch.float64) -> dict:
    """Every ``result.<name>`` of a refnet bundle, computed in torch at ``dtype``."""
    t = lambda a: torch.from_numpy(np.asarray(a)).to(dtype)  # noqa: E731
    acts = meta["architecture"]["activations"]
    net = sequential(meta["architecture"]["sizes"]).to(dtype)
    net.load_state_dict({k: t(bundle[f"params.{k}"]) for k in meta["param_keys"]}, strict=True)
    X, y = t(bundle["input"]), torch.from_numpy(bundle["label"])

    def draw(l, shape):
        return {s: t(bundle[f"noise.{l}.{s}"]) for s in ("add_unc", "add_cor", "mul_unc", "mul_cor")
                if f"noise.{l}.{s}" in bundle}

    params = dict(net.named_parameters())
    out = {}

    def grads_of(value, name):
        g = torch.autograd.grad(value, list(params.values()), retain_graph=True, allow_unused=True)
        for k, gk in zip(params, g):
            out[f"result.grad.{name}.{k}"] = (torch.zeros_like(params[k]) if gk is None else gk).detach().numpy()

    A, Z = noisy_forward(net, acts, X, meta["noise"], draw)
    for l, a in enumerate(A):
        out[f"result.layer.{l}"] = a.detach().numpy()
    loss = torch.nn.functional.cross_entropy(A[-1], y)
    out["result.loss"] = loss.detach().numpy()
    grads_of(loss, "loss")
    penalties = {}
    for name, spec in meta["regularizers"].items():
        penalties[name] = regularizer(spec, net, Z, acts)
        out[f"result.penalty.{name}"] = penalties[name].detach().numpy()
        grads_of(penalties[name], name)
    step = meta["step"]
    opt = torch.optim.SGD(net.parameters(), lr=step["lr"])
    opt.zero_grad()
    (loss + sum(penalties[r] for r in step["regularizers"])).backward()
    if not step["train_biases"]:
        for m in net:
            if isinstance(m, torch.nn.Linear):
                m.bias.grad = None
    opt.step()
    for k, v in net.state_dict().items():
        out[f"result.step.{k}"] = v.numpy()
    return out


def torch_samples(net, X, noise: dict, K: int, layers, generator, scale: float = 1.0) -> dict:
    """K noisy repeats of each input with torch's own random numbers: ``{l: (K, T, n_l)}``.
    ``scale`` multiplies every noise variance (1.1 plays a simulator with a 10 % error)."""
    noise = dict(noise, specs={k: {s: scale * v for s, v in spec.items()}
                               for k, spec in noise["specs"].items()})
    T = X.shape[0]
    Xk = X.repeat(K, 1)  # rows (repeat, input)

    def draw(l, shape):
        n = shape[0]
        return {"add_unc": torch.randn(shape, generator=generator, dtype=X.dtype),
                "add_cor": torch.randn((n, 1), generator=generator, dtype=X.dtype),
                "mul_unc": torch.randn(shape, generator=generator, dtype=X.dtype),
                "mul_cor": torch.randn((n, 1), generator=generator, dtype=X.dtype)}

    acts = ["sigmoid"] * (len([m for m in net if isinstance(m, torch.nn.Linear)]) - 1) + ["identity"]
    with torch.no_grad():
        A, _ = noisy_forward(net, acts, Xk, noise, draw)
    return {l: A[l].reshape(K, T, -1).numpy() for l in layers}


def train_noisy_duque(sizes, X, y, *, epochs: int, variance: float, seed: int):
    """Noise-aware training with the authors' Eq. 7 regularizer (batch sum of f'(z^(2)) plus
    weight norms of layers 2 and L), Adagrad lr 0.01 as in the authors' code, float64."""
    torch.manual_seed(seed)
    net = sequential(sizes).double()
    opt = torch.optim.Adagrad(net.parameters(), lr=0.05)
    L = len(sizes) - 1
    noise = {"layers": list(range(1, L)), "position": "post",
             "specs": {str(l): {"add_unc": variance} for l in range(1, L)}}
    g = torch.Generator().manual_seed(seed)
    lam, (c0, c1, c2) = 6e-3, (0.01, 0.015, 3.0)  # the authors' MNIST coefficients
    duque = {"kind": "saturation", "derivative_lambdas": {"2": lam * c0},
             "weight_lambdas": {"2": lam * c1, str(L): lam * c2}, "reduction": "sum", "power": 1}
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(epochs):
        for i in range(0, len(X), 64):
            xb, yb = Xt[i:i + 64], yt[i:i + 64]
            A, Z = noisy_forward(net, ["sigmoid"] * (L - 1) + ["identity"], xb, noise,
                                 lambda l, shape: {"add_unc": torch.randn(shape, generator=g,
                                                                          dtype=xb.dtype)})
            loss = torch.nn.functional.cross_entropy(A[-1], yb) + regularizer(
                duque, net, Z, ["sigmoid"] * (L - 1) + ["identity"])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net, noise


def blobs(n: int, n_in: int, n_classes: int, seed: int):
    """A small synthetic classification problem: Gaussian blobs (no download needed)."""
    g = np.random.default_rng(seed)
    centres = g.normal(0, 0.4, (n_classes, n_in))
    y = g.integers(0, n_classes, n)
    return centres[y] + g.normal(size=(n, n_in)), y


def fill_main(argv) -> int:
    """``fill BUNDLE [-o OUT] [--dtype float32]``: write torch's results into a bundle."""
    from refnet.crosscheck import read_bundle, write_bundle

    ap = argparse.ArgumentParser(prog="torch_crosscheck.py fill",
                                 description="fill a refnet bundle with torch's answers")
    ap.add_argument("bundle", type=Path)
    ap.add_argument("-o", "--out", type=Path, help="output bundle (default: in place)")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    args = ap.parse_args(argv)
    arrays, meta = read_bundle(args.bundle)
    results = fill_bundle(arrays, meta, getattr(torch, args.dtype))
    write_bundle(args.out or args.bundle, {**arrays, **results}, meta)
    print(f"{args.out or args.bundle}: {len(results)} torch results ({args.dtype}) written")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["fill"]:
        return fill_main(argv[1:])
    from safetensors.numpy import save_file as save_numpy
    from safetensors.torch import save_file

    from refnet.cli import main as refnet
    from refnet.crosscheck import read_bundle, write_bundle

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="working folder (default: a temporary one)")
    ap.add_argument("--repeats", type=int, default=500, help="K for the statistical mode")
    ap.add_argument("--inputs", type=int, default=40, help="T for the statistical mode")
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="refnet-torch-crosscheck-"))
    out.mkdir(parents=True, exist_ok=True)
    sizes, variance = (20, 32, 32, 4), 0.02
    X, y = blobs(1024, sizes[0], sizes[-1], seed=0)
    net, noise = train_noisy_duque(sizes, X, y, epochs=3, variance=variance, seed=0)
    save_file(net.state_dict(), str(out / "model.safetensors"))

    # bundle mode: refnet writes the bundle, torch fills it in, refnet checks it
    bundle = out / "bundle.safetensors"
    codes = {"make": refnet(["crosscheck", "make", str(out / "model.safetensors"), "-o", str(bundle),
                             "--variances", f"add_unc={variance}", "--seed", "1"])}
    arrays, meta = read_bundle(bundle)
    for name, dtype in (("float64", torch.float64), ("float32", torch.float32)):
        filled = out / f"bundle_{name}.safetensors"
        write_bundle(filled, {**arrays, **fill_bundle(arrays, meta, dtype)}, meta)
        print(f"\n== refnet crosscheck check {filled.name} (torch {name})")
        codes[f"check {name}"] = refnet(["crosscheck", "check", str(filled)])

    # statistical mode: torch's own random numbers, K repeats of T inputs
    Xs = torch.from_numpy(X[:args.inputs])
    for name, scale in (("correct", 1.0), ("variance+10%", 1.1)):
        gen = torch.Generator().manual_seed(7)
        S = torch_samples(net, Xs, noise, args.repeats, (1, 2, 3), gen, scale)
        samples = out / f"samples_{name}.safetensors"
        save_numpy({"input": X[:args.inputs], "label": y[:args.inputs],
                    **{f"samples.layer.{l}": v for l, v in S.items()}}, str(samples))
        print(f"\n== refnet crosscheck stat ({name} simulator)")
        codes[f"stat {name}"] = refnet(["crosscheck", "stat", str(bundle), "--samples", str(samples)])
    print("\nexit codes:", codes)
    want = {"make": 0, "check float64": 0, "check float32": 0, "stat correct": 0,
            "stat variance+10%": 1}
    return 0 if codes == want else 1


if __name__ == "__main__":
    sys.exit(main())
