"""Semenova 2022, Fig. 5: output-layer SNR vs output mean of the trained networks A, B and C.

A: MNIST, T images of digit 5 (blue: the class-5 output neuron, yellow: the other nine);
B: Fashion-MNIST, T pullovers (blue: the pullover neuron); C: Mackey-Glass, T test windows.
Numeric: Monte-Carlo, each input repeated K times (refnet.montecarlo.stats, Eq. 4). Analytic
(red line): Eq. 14 chained through the layers from weight statistics, with p* approximated by
Eq. 29 (refnet.propagation.trained), and Eq. 5 at the output. Also, per input and neuron, the
first-order Jacobian prediction (refnet.propagation.sensitivity).

Noise: the paper's Fig. 5 does not say which; refnet uses Fig. 3's intensities, all four types
at once (:data:`NOISE_INTENSITIES`), on every layer's output, the input included (noise
preset "semenova").

    python validation/semenova_fig5.py [--preset quick|full] [--seed 0] [--out DIR]
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import protocol as se
from ..results import load_results, save_figure, save_results
from ..report import Check, FigureEntry
from ..stages import record as record_part
from ..tasks import Labelled, set_task_threads, worker_print

NAME = "semenova_fig5"
#: Semenova intensities D (variance 2D): Fig. 3's values; Fig. 5 does not state its noise.
NOISE_INTENSITIES = {"D_A_U": 1e-4, "D_A_C": 1e-4, "D_M_U": 1e-3, "D_M_C": 1e-3}
#: p* approximation used for the analytic line (Methods VII B: Eq. 29 agrees best).
DENSITY = "exp_quartic"
FALLBACK = "normal"  #: used, and recorded, where the Eq. 29 fit fails
#: Size of the uncorrelated-only / correlated-only diagnostic runs (first inputs, repeats).
SPLIT_T, SPLIT_K = 200, 100
TITLES = {"A": "(a) network A, MNIST digit 5", "B": "(b) network B, Fashion-MNIST pullovers",
          "C": "(c) network C, Mackey-Glass"}
# Printed in Sec. IV, percent: (network, quantity, paper value, tolerance, why that tolerance).
PAPER = (("A", "train error", 1.0, 1.0, "the paper gives '~1%'"),
         ("A", "test error", 1.0, 1.0, "the paper gives '~1%'"),
         ("B", "train error", 5.0, 2.0, "two significant digits printed"),
         ("B", "test error", 10.0, 2.0, "two significant digits printed"),
         ("C", "test accuracy", 87.0, 5.0, "the metric is undefined in the paper"))


PAPER_ERR = {"A": "~1 %", "B": "10 %"}


def noise_config(n_layers: int, intensities: dict = NOISE_INTENSITIES):
    """Noise preset "semenova" (Eq. 3 on every layer's output, input included), intensities D."""
    from refnet.noise import NoiseSpec, noise_config as make

    return make("semenova", NoiseSpec.from_intensities(**intensities), n_layers)


def eq14(arch, params, X, intensities: dict = NOISE_INTENSITIES) -> dict:
    """:func:`refnet.propagation.trained.trained_network_variances` with :data:`DENSITY`.

    If the Eq. 29 fit fails (its Newton iteration can hit a singular matrix on heavy-tailed
    states), the normal approximation is used instead; ``result["density"]`` says which.
    """
    from refnet.propagation.trained import trained_network_variances

    kw = {f"{k}_intensity": v for k, v in intensities.items()}
    try:
        return {**trained_network_variances(arch, params, X, density=DENSITY, **kw),
                "density": DENSITY}
    except np.linalg.LinAlgError:
        return {**trained_network_variances(arch, params, X, density=FALLBACK, **kw),
                "density": FALLBACK}


def analyse(arch, params, X, K: int, seed: int) -> dict:
    """Monte-Carlo output statistics, the Eq. 14 curve and the per-input sensitivity prediction."""
    from refnet.montecarlo import neuron_statistics
    from refnet.propagation.sensitivity import output_variance_contributions

    L = arch.n_layers
    cfg = noise_config(L)
    st = neuron_statistics(arch, params, X, cfg, K=K, rng=seed, layers=(L,)).layers[L]
    an = eq14(arch, params, X)
    _, contrib, _, _ = output_variance_contributions(arch, params, X, cfg, covariance=False)
    m = st.mean
    if arch.activations[-1] == "sigmoid":
        y = np.linspace(1e-3, 1 - 1e-3, 400)
        # noise can push a mean just outside (0, 1), where f^{-1} in Eq. 5's slope is undefined
        m = np.clip(m, 1e-9, 1 - 1e-9)
    else:
        pad = 0.05 * np.ptp(st.mean)
        y = np.linspace(st.mean.min() - pad, st.mean.max() + pad, 400)
    return {"mean": st.mean, "variance": st.variance, "snr": st.snr,
            "variance_lo": st.variance_ci[0], "variance_hi": st.variance_ci[1],
            "eq14_variance": an["output_variance"](m), "sens_variance": contrib.sum(axis=(0, 1)),
            "curve_y": y, "curve_snr": y / np.sqrt(an["output_variance"](y)), "S": an["S"],
            "density": np.array(an["density"])}


def split_agreement(arch, params, X, K: int, seed: int) -> dict:
    """Median MC / Eq. 14 output variance with only the uncorrelated, or only the correlated,
    sources of :data:`NOISE_INTENSITIES` on (a diagnostic: which part Eq. 14 captures)."""
    from refnet.montecarlo import neuron_statistics

    L, D = arch.n_layers, NOISE_INTENSITIES
    res = {}
    for kind, keep in (("uncorrelated", ("D_A_U", "D_M_U")), ("correlated", ("D_A_C", "D_M_C"))):
        d = {k: (v if k in keep else 0.0) for k, v in D.items()}
        st = neuron_statistics(arch, params, X, noise_config(L, d), K=K, rng=seed,
                               layers=(L,)).layers[L]
        m = np.clip(st.mean, 1e-9, 1 - 1e-9) if arch.activations[-1] == "sigmoid" else st.mean
        pred = eq14(arch, params, X, d)["output_variance"](m)
        res[kind] = float(np.median(st.variance / pred))
    return res


@dataclass(frozen=True)
class NetworkTask:
    """Network ``net`` of Fig. 5: its data and training, then its Monte-Carlo, the Eq. 14
    curve and the split diagnostic on ``T`` inputs x ``K`` repeats."""

    net: str
    setup: se.SemenovaSetup
    folder: str
    T: int
    K: int
    seed: int
    threads: int | None = None   #: numba threads on a worker (refnet.reproduction.tasks)
    needs = ()

    @property
    def name(self) -> str:
        return f"network {self.net}"

    @property
    def priority(self) -> tuple:
        return (tuple(se.NETWORKS).index(self.net),)   # A and B (the longest) first


def run_network(task: NetworkTask, log=print) -> dict:
    """One network's arrays (``"<net>/<name>"``) and record; the seconds of its two parts."""
    in_worker = set_task_threads(task)
    log = worker_print if in_worker else log
    net, setup = task.net, task.setup
    t0 = time.perf_counter()
    data = se.load_data(setup)
    arch, params, meta = se.train_network(
        setup, data, task.folder, log=log,
        progress=Labelled(sys.stderr, f"  {NAME} {net}: ") if in_worker else sys.stderr)
    t1 = time.perf_counter()
    X, inputs = se.figure5_inputs(setup, data, task.T)
    log(f"  {NAME} {net}: Monte-Carlo, T = {len(X)} inputs x K = {task.K}")
    arrays = {f"{net}/{k}": v for k, v in analyse(arch, params, X, task.K, task.seed).items()}
    n_split, k_split = min(len(X), SPLIT_T), min(task.K, SPLIT_K)
    split = split_agreement(arch, params, X[:n_split], k_split, task.seed)
    record = {"setup": asdict(setup), "errors": meta["errors"], "inputs": inputs,
              "data": data.provenance, "architecture": arch.as_dict(),
              "eq14_split": {**split, "T": n_split, "K": k_split}}
    return {"arrays": arrays, "record": record,
            "seconds": (t1 - t0, time.perf_counter() - t1)}


def compute(preset, out, log=print, *, workers: int | None = None) -> None:
    """Train (or load) networks A, B and C and analyse each; ``workers``: processes to run the
    networks on side by side (default one per core, 1: this process; same numbers)."""
    from ..tasks import executor_for, run_tasks

    if load_results(out, NAME) is not None:
        log(f"{NAME}: cached")
        return
    arrays, record = {}, {"preset": preset.name, "seed": preset.seed, "K": preset.semenova_K,
                          "T": preset.semenova_T, "noise_intensities": NOISE_INTENSITIES,
                          "noise_placement": "semenova: every layer's output, input included",
                          "density": DENSITY, "networks": {}}
    tasks = [NetworkTask(net, se.setup_for(net, preset), str(Path(out) / "models"),
                         preset.semenova_T, preset.semenova_K, preset.seed) for net in se.NETWORKS]
    executor, slots, cores = executor_for(workers, len(tasks))
    results = {}
    with executor:
        for task, res in run_tasks(tasks, run_network, executor, slots=slots, cores=cores,
                                   log=log):
            results[task.net] = res
    for net in se.NETWORKS:   # the file's order does not depend on which network ended first
        res = results[net]
        arrays.update(res["arrays"])
        record["networks"][net] = res["record"]
        for what, seconds in zip(("data and training", "Monte-Carlo and analytic"), res["seconds"]):
            record_part(f"network {net}: {what}", seconds, workers=slots)
    save_results(out, NAME, arrays, record)


def plot(out) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arrays, rec = load_results(out, NAME)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    for ax, net in zip(axes, se.NETWORKS):
        m, snr = arrays[f"{net}/mean"], arrays[f"{net}/snr"]
        if net in se.TARGET_CLASS:
            c = rec["networks"][net]["inputs"]["class"]
            other = np.delete(np.arange(m.shape[1]), c)
            ax.scatter(m[:, other].ravel(), snr[:, other].ravel(), s=4, c="gold", alpha=0.5,
                       label="other nine output neurons (Monte-Carlo)")
            ax.scatter(m[:, c], snr[:, c], s=6, c="tab:blue", label=f"class-{c} output neuron (Monte-Carlo)")
        else:
            ax.scatter(m.ravel(), snr.ravel(), s=6, c="tab:blue", label="output neuron (Monte-Carlo)")
        with np.errstate(divide="ignore", invalid="ignore"):
            sens = m / np.sqrt(arrays[f"{net}/sens_variance"])
        ax.scatter(m.ravel(), sens.ravel(), s=1, c="k", marker=".", zorder=3,
                   label="first-order Jacobian (per input)")
        ax.plot(arrays[f"{net}/curve_y"], arrays[f"{net}/curve_snr"], "r-", lw=1.5,
                label="analytic, Eq. 14, $p^*$ " + (
                    "by Eq. 29" if str(arrays[f"{net}/density"]) == DENSITY
                    else f"{arrays[f'{net}/density']} (Eq. 29 fit failed)"))
        ax.set_xlabel("output mean $E(y)$ (dimensionless)")
        ax.set_ylabel(r"SNR $= E(y) / \sqrt{\mathrm{Var}(y)}$")
        err = rec["networks"][net]["errors"]["test"]
        score = (f"test error {err['error']:.2f} % (paper: {PAPER_ERR[net]})" if "error" in err
                 else f"test NRMSE {err['nrmse']:.3f}, $R^2$ = {err['r2']:.4f}")
        ax.set_title(f"{TITLES[net]} ({rec['preset']} preset)\n{score}; noise: all four types, "
                     "Fig. 3 intensities", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    return save_figure(fig, out, NAME, dpi=110)


def agreement(arrays, net: str) -> dict:
    """Measured Monte-Carlo vs prediction numbers of one network (all outputs, all inputs)."""
    v = arrays[f"{net}/variance"]
    lo, hi = arrays[f"{net}/variance_lo"], arrays[f"{net}/variance_hi"]
    e14, sens = arrays[f"{net}/eq14_variance"], arrays[f"{net}/sens_variance"]
    return {"eq14_ratio": float(np.median(v / e14)),
            "eq14_log_snr": float(np.median(np.abs(0.5 * np.log10(v / e14)))),
            "sens_ratio": float(np.median(v / sens)),
            "sens_in_ci": float(np.mean((lo <= sens) & (sens <= hi)))}


def _value(rec, net, quantity):
    err = rec["networks"][net]["errors"]
    if quantity == "test accuracy":
        return err["test"]["accuracy"]
    return err[quantity.split()[0]]["error"]


#: Readings of "prediction accuracy" for a regression (the paper defines none), in percent.
READINGS = {"100 (1 - NRMSE)": lambda e, y: 100 * (1 - np.sqrt(np.mean(e ** 2)) / np.std(y)),
            "100 R^2": lambda e, y: 100 * (1 - np.mean(e ** 2) / np.var(y)),
            "100 (1 - mean abs(e / y))": lambda e, y: 100 * (1 - np.mean(np.abs(e / y))),
            "100 (1 - RMSE / mean(y))": lambda e, y: 100 * (1 - np.sqrt(np.mean(e ** 2)) / np.mean(y))}


def c_readings(out, preset) -> dict | None:
    """Network C on its test windows: every :data:`READINGS` for the trained network and for
    the persistence forecast (next point = last input point), plus where training stopped and
    the first epoch whose validation windows reach 87 % on the first reading."""
    setup = se.setup_for("C", preset)
    path = Path(out) / "models" / f"semenova-C-{setup.dataset}-{setup.key()}.npz"
    if not path.exists():
        return None
    arch, params, meta = se.train_network(setup, se.load_data(setup), Path(out) / "models",
                                          log=lambda *a: None)
    data = se.load_data(setup)
    y = data.y_test
    pred = se.predict_outputs(arch, params, data.X_test)[:, 0]
    out = {"net": {k: float(f(pred - y, y)) for k, f in READINGS.items()},
           "persistence": {k: float(f(data.X_test[:, -1] - y, y)) for k, f in READINGS.items()},
           "best_epoch": meta.get("best_epoch"), "epochs_done": meta.get("epochs_done"),
           "max_epochs": setup.epochs, "patience": setup.patience,
           "first_87": None}
    if data.y_val is not None:
        sd = float(np.std(data.y_val))
        for h in meta["history"]:
            if "val_loss" in h and 100 * (1 - np.sqrt(h["val_loss"]) / sd) >= 87:
                out["first_87"] = h["epoch"]
                break
    return out


def _c_check(rec, paper, tol, tol_why, r) -> Check:
    """C's "87 % prediction accuracy": refnet's reading 100 (1 - NRMSE), with the range over
    every reading of :data:`READINGS` as its envelope (the metric is the unrecorded setting)."""
    value = rec["networks"]["C"]["errors"]["test"]["accuracy"]
    quantity = "network C: test accuracy (refnet: 100 (1 - NRMSE), NRMSE = RMSE / std(target))"
    if r is None:
        return Check("Semenova 2022, Sec. IV", quantity, paper, value, tol,
                     reason=f"the metric is undefined in the paper (tolerance: {tol_why})")
    net, per = r["net"], r["persistence"]
    cells = "; ".join(f"{k}: {v:.2f} (persistence {per[k]:.2f})" for k, v in net.items())
    capped = r["epochs_done"] == r.get("max_epochs")
    stop = ((f"C trained with early stopping on its last training windows: best epoch "
             f"{r['best_epoch']} of {r['epochs_done']} run"
             + (" (the epoch cap: the validation loss was still creeping down)" if capped
                else f" (stopped after {r['patience']} epochs without improvement)") + ". ")
            if r["best_epoch"] else "")
    early = (f" or a network stopped early (refnet's C first reaches 87 % on its validation "
             f"windows at epoch {r['first_87']})" if r["first_87"] else "")
    reading = (f"{stop}The paper's 87 % fits no reading of the trained network; on "
               f"100 (1 - NRMSE) it is near the persistence forecast's "
               f"{per['100 (1 - NRMSE)']:.1f} %{early}.")
    return Check("Semenova 2022, Sec. IV", quantity, paper, value, tol, reason=reading,
                 envelope=(min(net.values()), max(net.values())), envelope_cells=cells)


def report(out, preset):
    arrays, rec = load_results(out, NAME)
    quick = rec["preset"] == "quick"
    sa = rec["networks"]["A"]
    why = ((f"quick preset: {sa['setup']['epochs']} epochs on {sa['data']['n_train_used']} "
            f"training images, batch {sa['setup']['batch_size']}; " if quick else "") +
           "epochs, learning rate, batch size, output neurons, loss and A's constant biases were "
           "not recorded (refnet's choices are in the result file)")
    checks = []
    c_read = c_readings(out, preset)
    for net, quantity, paper, tol, tol_why in PAPER:
        if rec["networks"][net]["setup"]["dataset"] != se.NETWORKS[net][0]:
            continue  # a stand-in dataset (tests): no paper number applies
        if net == "C":
            checks.append(_c_check(rec, paper, tol, tol_why, c_read))
            continue
        checks.append(Check("Semenova 2022, Sec. IV", f"network {net}: {quantity}", paper,
                            _value(rec, net, quantity), tol,
                            reason=f"{why} (tolerance: {tol_why})"))
    said = []
    for net in se.NETWORKS:
        a = agreement(arrays, net)
        n = rec["networks"][net]
        err = (f"test error {n['errors']['test']['error']:.2f}%" if "error" in n["errors"]["test"]
               else f"test R^2 {n['errors']['test']['r2']:.3f}")
        dens = str(arrays[f"{net}/density"])
        if dens != DENSITY:
            err += f"; p* {dens}: the Eq. 29 fit failed (singular Newton step)"
        said.append(
            f"{net} ({err}): median MC/analytic output variance {a['eq14_ratio']:.2f} "
            f"(Eq. 14; median |log10 SNR ratio| {a['eq14_log_snr']:.3f}), median MC/first-order "
            f"Jacobian variance {a['sens_ratio']:.3f}, Jacobian prediction inside the MC 95% "
            f"variance interval for {100 * a['sens_in_ci']:.0f}% of (input, neuron) pairs; "
            f"Eq. 14 with one kind of noise alone (first {n['eq14_split']['T']} inputs, "
            f"K = {n['eq14_split']['K']}): median MC/analytic {n['eq14_split']['uncorrelated']:.2f}"
            f" uncorrelated, {n['eq14_split']['correlated']:.2f} correlated")
    fig = FigureEntry(
        "Semenova 2022, Fig. 5", f"figures/{NAME}.png",
        "SNR of the output layer of A (1000 images of digit 5; blue: class-5 neuron spread over "
        "the whole range, yellow: the other 9 focused at small means), B (1000 pullovers) and C "
        "(Mackey-Glass prediction); the solid red lines are the analytic prediction (first "
        "order, p* approximated), 'in very good agreement' with the numerics.",
        "; ".join(said) + ". Black dots: the first-order Jacobian prediction per input "
        "(refnet.propagation.sensitivity), which keeps every row's own weights. Eq. 14 carries "
        "correlated noise through the squared mean row sum (I mu(W))^2, while each neuron "
        "receives it through its own row sum; the mean of the squared row sums is larger "
        "whenever row sums vary, so Eq. 14 underestimates correlated noise there (compare the "
        "'correlated' ratios).",
        {"noise intensities D (variance 2D)": NOISE_INTENSITIES,
         "noise placement": "every layer's output, input included", "K": rec["K"],
         "T": rec["T"], "p* approximation": DENSITY,
         "epochs": rec["networks"]["A"]["setup"]["epochs"],
         "batch size": rec["networks"]["A"]["setup"]["batch_size"],
         "training images": rec["networks"]["A"]["data"]["n_train_used"],
         "optimizer": "Adam, lr 1e-3",
         "output neurons": "A, B sigmoid (MSE, one-hot); C linear (MSE)",
         "A constant biases": "U(-0.2, 0.2), fixed"})
    return checks, [fig]

