"""The no-lambda objective against noise-aware training and Eq. 7: accuracy vs noise variance.

Issue #14, item 2. Per dataset (MNIST, Fashion-MNIST): one baseline (Duque 2024's protocol,
:mod:`.protocol`, few epochs), then from it five models, each fine-tuned the same number of
epochs with the same optimizer:

==================  ==========================================================================
``standard``        the baseline itself (no fine-tuning)
``expected_loss``   :class:`refnet.regularizers.ExpectedLoss` at the evaluation variance
                    (additive uncorrelated noise after both hidden sigmoids: the hardware's)
``noise_aware``     noise-aware training at the same variance and placement
``eq7``             the Eq. 7 regularizer at the authors' code settings (Duque 2024, Eq. 7,
                    p. 5; presets ``addunc_sigm_mnist`` / ``addunc_sigm_fashion``)
``eq7_sweep_best``  the same preset at the lambda a ``refnet sweep`` chose
                    (:data:`SWEEP_BEST_LAMBDA`: where each value comes from)
==================  ==========================================================================

Each is then swept (:func:`refnet.montecarlo.accuracy_sweep`) under additive uncorrelated
noise after both hidden layers, variances log-spaced in [1e-3, 1] plus the training variance.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from . import protocol as dq
from ..results import load_results, save_figure, save_results

__all__ = ["ComparisonSettings", "MODES", "compute", "plot", "report_markdown"]

NAME = "expected_loss"
MODES = ("standard", "expected_loss", "noise_aware", "eq7", "eq7_sweep_best")
TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "synthetic": "synthetic blobs"}
#: Eq. 7's lambda for ``eq7_sweep_best`` per dataset and where it was chosen: the best cell by
#: accuracy under additive uncorrelated noise of variance 1 (the authors' coefficient set of
#: :data:`.protocol.EQ7_PRESET` in both the sweep and here).
SWEEP_BEST_LAMBDA = {
    "mnist": (2.4e-2, "validation/reports/sweep-mnist/front.md (validation/sweep_mnist.toml: "
                      "10-epoch baseline, 5 fine-tuning epochs, Eq. 4 lambda 0; also the best "
                      "setting averaged over its 2 seeds: 87.75 % against 86.37 % at the "
                      "authors' 6e-3)"),
    "fashion-mnist": (3e-3, "validation/reports/sweep-fashion-small/front.md "
                            "(validation/sweep_fashion_small.toml: this comparison's schedule, "
                            "lambda 0, 7.5e-4, 3e-3, 1.2e-2, 4.8e-2, 1 seed, 2,000 test "
                            "images; the authors' 1.2e-2 was off the front)"),
    "synthetic": (2.4e-2, "the MNIST value (test data, no sweep)")}


def mode_labels(variance: float, eq7_lambda: float | None = None) -> dict:
    best = "" if eq7_lambda is None else f" {eq7_lambda:g}"
    return {"standard": "standard (baseline, no fine-tuning)",
            "expected_loss": f"expected-loss objective, variance {variance:g} (no lambda)",
            "noise_aware": f"noise-aware training, variance {variance:g}",
            "eq7": "Eq. 7 regularizer, authors' settings",
            "eq7_sweep_best": f"Eq. 7 regularizer, sweep's best lambda{best}"}


@dataclass(frozen=True)
class ComparisonSettings:
    """Everything the comparison depends on (stored in each result file)."""

    datasets: tuple = ("mnist", "fashion-mnist")
    variance: float = 0.5          #: the hardware's (and evaluation) variance, add_unc
    baseline_epochs: int = 5
    finetune_epochs: int = 2
    n_train: int | None = 24000    #: first n training images (runtime; 48k/12k in the paper)
    n_levels: int = 13             #: log-spaced variances in [1e-3, 1]
    repetitions: int = 3
    ce_passes: int = 30            #: noisy passes for the Monte-Carlo cross-entropy increase
    seed: int = 0
    #: overrides :data:`SWEEP_BEST_LAMBDA` for every dataset (None: the table's values)
    eq7_sweep_lambda: float | None = None

    def sweep_lambda(self, dataset: str) -> tuple:
        """``(lambda, where it came from)`` of the ``eq7_sweep_best`` mode on ``dataset``."""
        if self.eq7_sweep_lambda is not None:
            return float(self.eq7_sweep_lambda), "set by the caller (eq7_sweep_lambda)"
        if dataset not in SWEEP_BEST_LAMBDA:
            from ...errors import ConfigError
            raise ConfigError(f"dataset: no sweep lambda recorded for {dataset!r}; pass "
                             "eq7_sweep_lambda= or add it to SWEEP_BEST_LAMBDA")
        return SWEEP_BEST_LAMBDA[dataset]

    @property
    def variances(self) -> np.ndarray:
        return np.unique(np.append(np.logspace(-3, 0, self.n_levels), self.variance))

    def setup(self, dataset: str) -> dq.DuqueSetup:
        return dq.DuqueSetup(dataset, baseline_epochs=self.baseline_epochs,
                             finetune_epochs=self.finetune_epochs, n_train=self.n_train,
                             noise_aware_variance=self.variance, seed=self.seed)


def _finetuned(setup, data, folder, base, mode, spec, *, tag="", log=print):
    """Fine-tune the baseline with regularizer ``spec``, cached in ``folder`` like the other modes.

    The fine-tuning settings are those of the noise-aware and Eq. 7 models with ``spec`` as the
    only regularizer. ``tag`` goes into the file name (settings the setup's key does not hold).
    """
    from ...io import load_cached_model

    arch, params, _ = base
    path = Path(folder) / f"{setup.dataset}-{mode}{tag}-{setup.key()}.npz"
    cached = load_cached_model(path, log)  # a damaged one is set aside and trained again
    if cached is not None:
        log(f"  {setup.dataset} {mode}: cached ({path.name})")
        return cached
    config = replace(dq.mode_config(setup, "regularized_unc", arch.n_layers), regularizers=(spec,))
    log(f"  {setup.dataset} {mode}: training {config.epochs} epochs")
    return dq.train_and_save(path, setup, data, mode, arch, params, config, progress=None)


def _extra_models(setup, data, folder, base, eq7_lambda, log):
    """The two modes :mod:`.protocol` does not train: the objective and Eq. 7 at the sweep's lambda."""
    from ...noise import NoiseSpec, noise_config
    from ...regularizers import ExpectedLoss, regularizer_preset

    noise = noise_config("duque", NoiseSpec(add_unc=setup.noise_aware_variance),
                         base[0].n_layers)
    return {"expected_loss": _finetuned(setup, data, folder, base, "expected_loss",
                                        ExpectedLoss(noise), log=log),
            "eq7_sweep_best": _finetuned(setup, data, folder, base, "eq7_sweep_best",
                                         regularizer_preset(dq.EQ7_PRESET[setup.dataset],
                                                            eq7_lambda),
                                         tag=f"_lam{eq7_lambda:g}", log=log)}


def _penalty_on(arch, params, X, variance):
    """``1/2 tr(H Sigma)`` at ``variance`` on ``X`` (the objective's predicted CE increase)."""
    from ...noise import NoiseSpec, noise_config
    from ...regularizers import ExpectedLoss, value

    spec = ExpectedLoss(noise_config("duque", NoiseSpec(add_unc=variance), arch.n_layers))
    return value(arch, params, X, spec)


def _mc_ce_increase(arch, params, X, y, variance, passes, seed):
    """Monte-Carlo ``E[CE(noisy)] - CE(clean)`` at ``variance`` and its standard error.

    ``passes`` noisy :func:`refnet.model.forward` passes over ``X`` (add_unc after both hidden
    layers); the standard error is over the passes' mean cross-entropies.
    """
    from ...losses import cross_entropy
    from ...model import forward
    from ...noise import NoiseSpec, noise_config

    noise = noise_config("duque", NoiseSpec(add_unc=variance), arch.n_layers)
    clean = cross_entropy(forward(arch, params, X)[0], y)[0]
    rng = np.random.default_rng(seed)
    ce = np.array([cross_entropy(forward(arch, params, X, noise, rng)[0], y)[0]
                   for _ in range(int(passes))])
    return float(ce.mean() - clean), float(ce.std(ddof=1) / np.sqrt(len(ce)))


def compute(settings: ComparisonSettings, out, models_folder, log=print) -> None:
    from refnet.montecarlo import accuracy_sweep

    out = Path(out)
    for ds in settings.datasets:
        name = f"{NAME}_{ds}"
        if load_results(out, name) is not None:
            log(f"{name}: cached")
            continue
        setup = settings.setup(ds)
        data = dq.load_data(setup)
        t0 = time.perf_counter()
        models = dq.train_models(setup, data, models_folder,
                                 modes=("standard", "noise_aware_unc", "regularized_unc"),
                                 progress=None, log=log)
        eq7_lambda, lambda_source = settings.sweep_lambda(ds)
        models = {"standard": models["standard"], "noise_aware": models["noise_aware_unc"],
                  "eq7": models["regularized_unc"],
                  **_extra_models(setup, data, models_folder, models["standard"], eq7_lambda,
                                  log)}
        arrays, record = {"variances": settings.variances}, {}
        for mode in MODES:
            arch, params, meta = models[mode]
            log(f"  sweep {ds} {mode}: {len(settings.variances)} levels x "
                f"{settings.repetitions} repetitions")
            res = accuracy_sweep(arch, params, data.X_test, data.y_test, "duque",
                                 noise_types=("add_unc",), variances=settings.variances,
                                 repetitions=settings.repetitions, rng=settings.seed)
            arrays[mode] = res.accuracy[0]  # (n_levels, repetitions)
            record[mode] = {
                "clean_accuracy": res.clean_accuracy,
                "train_seconds": (0.0 if mode == "standard" else
                                  float(sum(h["seconds"] for h in meta["history"]))),
                "penalty_at_variance": _penalty_on(arch, params, data.X_test[:2000],
                                                   settings.variance),
                "mc_ce_increase_at_variance": _mc_ce_increase(
                    arch, params, data.X_test[:2000], data.y_test[:2000], settings.variance,
                    settings.ce_passes, settings.seed),
                "train_config": meta["train_config"]}
        record["eq7_sweep_best"].update(eq7_lambda=eq7_lambda, eq7_lambda_source=lambda_source)
        save_results(out, name, arrays, {
            "settings": {**asdict(settings), "variances": settings.variances.tolist()},
            "setup": asdict(setup), "models": record, "data": data.provenance,
            "sweep": {"noise": "add_unc after the sigmoid of both hidden layers",
                      "n_test": int(len(data.y_test)), "repetitions": settings.repetitions},
            "seconds": round(time.perf_counter() - t0, 1)})


def _done(out, settings):
    return [(ds, r) for ds in settings.datasets if (r := load_results(out, f"{NAME}_{ds}"))]


def plot(settings: ComparisonSettings, out) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = _done(out, settings)
    fig, axes = plt.subplots(1, len(done), figsize=(6.4 * len(done), 5.8), squeeze=False)
    for ax, (ds, (arrays, rec)) in zip(axes[0], done):
        v = arrays["variances"]
        labels = _labels(settings, rec)
        for mode in MODES:
            a = 100 * arrays[mode]
            m, s = a.mean(axis=1), a.std(axis=1, ddof=1)
            ax.plot(v, m, marker="o", ms=3, label=labels[mode])
            ax.fill_between(v, m - 2 * s, m + 2 * s, alpha=0.2, lw=0)
        ax.axvline(settings.variance, color="0.5", ls=":", lw=1,
                   label=f"training variance {settings.variance:g}")
        ax.set_xscale("log")
        ax.set_xlabel("noise variance (dimensionless: sigmoid outputs lie in [0, 1]);\n"
                      "additive uncorrelated, after both hidden sigmoids")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{TITLES.get(ds, ds)}: mean $\\pm$ 2 std over "
                     f"{arrays[MODES[0]].shape[1]} noisy passes of the test set", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        # below the axes, so that no curve is hidden behind it
        ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    return save_figure(fig, out, NAME, dpi=110)


def _labels(settings, rec):
    return mode_labels(settings.variance, rec["models"]["eq7_sweep_best"]["eq7_lambda"])


def _nearest(v, x):
    return int(np.argmin(np.abs(np.log(v) - np.log(x))))


def report_markdown(settings: ComparisonSettings, out) -> str:
    """The comparison as Markdown, every number read from the result files."""
    lines = ["# The no-lambda expected-loss objective vs noise-aware training and Eq. 7", "",
             "Generated by `validation/expected_loss_comparison.py` (code: "
             "`refnet/reproduction/duque/expected_loss.py`); derivation: `docs/expected_loss.md`.",
             "",
             f"Protocol: per dataset, a baseline trained {settings.baseline_epochs} epochs "
             f"(Adagrad lr 0.01, batch 128, no shuffling, first {settings.n_train} training "
             f"images, 1/5 of them held out), then each mode fine-tuned {settings.finetune_epochs}"
             " epochs from it with the same optimizer. Evaluation: additive uncorrelated noise "
             "after both hidden sigmoids, "
             f"{settings.repetitions} noisy passes over the whole test set per variance "
             "(`refnet.montecarlo.accuracy_sweep`). The standard errors below are std/sqrt(n) "
             "over those passes. The cross-entropy increase under noise at the training "
             "variance is on the first 2,000 test images: predicted by the objective "
             f"(1/2 tr(H Sigma)) and measured ({settings.ce_passes} noisy passes). "
             "Fine-tuning times are wall times on a machine shared with other jobs.", "", "![accuracy vs variance](figures/expected_loss.png)", ""]
    for ds, (arrays, rec) in _done(out, settings):
        v = arrays["variances"]
        labels = _labels(settings, rec)
        best = rec["models"]["eq7_sweep_best"]
        picks = [_nearest(v, x) for x in (0.01, 0.1, settings.variance, 1.0)]
        head = " | ".join(f"variance {v[j]:.3g}" for j in picks)
        lines += [f"## {TITLES.get(ds, ds)}", "",
                  f"| mode | clean | {head} | fine-tuning time (s) | CE increase at "
                  f"{settings.variance:g}: predicted 1/2 tr(H Sigma) | Monte-Carlo |",
                  "|---" * (5 + len(picks)) + "|"]
        lines[-2:-2] = [f"Eq. 7's lambda: the authors' code set `{dq.EQ7_PRESET[ds]}` at its own "
                        f"lambda, and at the sweep's best {best['eq7_lambda']:g}, from "
                        f"{best['eq7_lambda_source']}.", ""]
        for mode in MODES:
            a = 100 * arrays[mode]
            m, se = a.mean(axis=1), a.std(axis=1, ddof=1) / np.sqrt(a.shape[1])
            r = rec["models"][mode]
            cells = " | ".join(f"{m[j]:.2f} +- {se[j]:.2f}" for j in picks)
            mc, mc_se = r["mc_ce_increase_at_variance"]
            lines.append(f"| {labels[mode]} | {100 * r['clean_accuracy']:.2f} | {cells} | "
                         f"{r['train_seconds']:.0f} | {r['penalty_at_variance']:.4f} | "
                         f"{mc:.4f} +- {mc_se:.4f} |")
        lines += ["", _verdict(arrays, rec, v, picks, labels), ""]
        ratio = [rec["models"][m]["penalty_at_variance"] / rec["models"][m]["mc_ce_increase_at_variance"][0]
                 for m in MODES]
        lines += [f"Predicted / measured CE increase at {settings.variance:g}: "
                  f"{min(ratio):.2f} to {max(ratio):.2f} over the {len(MODES)} models.", "",
                  _eq7_lambdas(arrays, rec, v, picks), ""]
    lines += ["## Reading the comparison", "",
              "* The fine-tuned models had more epochs of training than the baseline, so their "
              "gain at small variances may come from the extra epochs rather than robustness "
              "(no clean fine-tuned control is run).",
              "* Eq. 7 at the authors' code settings sums its derivative term over the batch "
              "(the paper averages); with this short schedule that setting is strong, and how "
              "much clean accuracy it costs differs between the datasets (table).",
              "* The objective is a second-order expansion that leaves out the O(v) shift of "
              "the logits' mean (docs/expected_loss.md, section 4); the predicted/measured "
              "ratio above shows how far the expansion is from the sampled CE at the training "
              "variance.",
              "* The sweep's best lambda was chosen by accuracy at variance 1 on the test set "
              "(the sweeps score on test images), so that mode is tuned on what it is scored "
              "on; the other modes are not. The MNIST lambda comes from a sweep with a longer "
              "schedule (10 + 5 epochs on 48,000 images) than this comparison's.",
              "* Not done here: longer schedules, other seeds, a lambda chosen at the training "
              "variance rather than at 1.", ""]
    return "\n".join(lines) + "\n"


def _eq7_lambdas(arrays, rec, v, picks):
    """Eq. 7 at the sweep's lambda against Eq. 7 at the authors' settings, clean and noisy."""
    m = {k: 100 * arrays[k].mean(axis=1) for k in ("eq7", "eq7_sweep_best")}
    clean = {k: 100 * rec["models"][k]["clean_accuracy"] for k in m}
    noisy = "; ".join(f"at variance {v[j]:.3g} {m['eq7_sweep_best'][j]:.2f} % against "
                      f"{m['eq7'][j]:.2f} %" for j in picks)
    return (f"Eq. 7 at the sweep's lambda {rec['models']['eq7_sweep_best']['eq7_lambda']:g} "
            f"against the authors' settings (computed): clean {clean['eq7_sweep_best']:.2f} % "
            f"against {clean['eq7']:.2f} %; {noisy}.")


def _verdict(arrays, rec, v, picks, labels):
    """Which mode wins at each listed variance, and by how many standard errors."""
    out = []
    for j in picks:
        stats = {}
        for mode in MODES:
            a = 100 * arrays[mode][j]
            stats[mode] = (a.mean(), a.std(ddof=1) / np.sqrt(len(a)))
        order = sorted(MODES, key=lambda k: -stats[k][0])
        (b, (mb, sb)), (c, (mc, sc)) = (order[0], stats[order[0]]), (order[1], stats[order[1]])
        z = (mb - mc) / max(np.hypot(sb, sc), 1e-12)
        out.append(f"at variance {v[j]:.3g}: best {labels[b]} ({mb:.2f}%), then {labels[c]} "
                   f"({mc:.2f}%), difference {mb - mc:.2f} pp = {z:.1f} standard errors")
    return "Winner per variance (computed): " + "; ".join(out) + "."
