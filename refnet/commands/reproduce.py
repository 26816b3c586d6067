"""``refnet reproduce``: regenerate the papers' figures and numbers and write the report."""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

HELP = "regenerate the figures and tables of both papers and write report.md / report.html"

#: Validation scripts in the order they run. ``quick`` uses MNIST only (plus generated data),
#: so it leaves out semenova_fig5, whose network B needs Fashion-MNIST.
SCRIPTS = ("duque_fig4", "duque_fig2", "duque_fig3", "semenova_fig3", "semenova_fig4",
           "semenova_fig5", "semenova_fig6")
QUICK_SCRIPTS = ("duque_fig4", "duque_fig2", "duque_fig3", "semenova_fig3", "semenova_fig4",
                 "semenova_fig6")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="quick", choices=["quick", "full"],
                   help="quick: MNIST only, a few minutes; full: everything (default quick)")
    p.add_argument("--only", nargs="+", metavar="NAME", help=f"run only these: {', '.join(SCRIPTS)}")
    p.add_argument("--out", type=Path, help="output folder (default runs/reproduce-<preset>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--list", action="store_true", help="list the validation scripts and exit")


def available_scripts():
    from refnet.experiments.results import validation_dir

    d = validation_dir()
    return [s for s in SCRIPTS if (d / f"{s}.py").exists()]


def run(args) -> int:
    from refnet import __version__
    from refnet.experiments.presets import get_preset
    from refnet.experiments.results import load_script
    from refnet.report import write_report

    have = available_scripts()
    if args.list:
        for s in SCRIPTS:
            print(f"{s:16} {'' if s in have else '(not written yet)'}")
        return 0
    wanted = args.only or [s for s in (QUICK_SCRIPTS if args.preset == "quick" else SCRIPTS)]
    unknown = [s for s in wanted if s not in SCRIPTS]
    if unknown:
        raise SystemExit(f"--only: unknown {unknown}; known: {', '.join(SCRIPTS)}")
    missing = [s for s in wanted if s not in have]
    todo = [s for s in wanted if s in have]
    preset = get_preset(args.preset, args.seed)
    out = args.out or Path("runs") / f"reproduce-{preset.name}"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    checks, figures, timings = [], [], {}
    for name in todo:
        mod = load_script(name)
        t = time.perf_counter()
        print(f"[{name}] computing (cached results in {out / 'results'} are reused)")
        mod.compute(preset, out)
        mod.plot(out)
        c, f = mod.report(out, preset)
        checks += c
        figures += f
        timings[name] = time.perf_counter() - t
        print(f"[{name}] done in {timings[name]:.1f} s")
    elapsed = time.perf_counter() - t0
    header = {"preset": f"{preset.name}: {preset.notes}", "seed": preset.seed,
              "refnet version": __version__,
              "machine": f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}",
              "wall time of this run": f"{elapsed:.0f} s (cached parts are not recomputed)",
              "scripts": ", ".join(f"{k} ({v:.0f} s)" for k, v in timings.items())}
    if missing:
        header["not reproduced in this version"] = ", ".join(missing)
    md, html = write_report(out, checks, figures, header,
                            title=f"refnet reproduction report ({preset.name} preset)")
    if checks:
        print(f"\n{'quantity':78} {'paper':>8} {'refnet':>8}  verdict")
        for c in checks:
            print(f"{c.quantity[:78]:78} {c.paper:8.2f} {c.refnet:8.2f}  {c.verdict}")
    n_ok = sum(c.verdict == "agrees" for c in checks)
    print(f"\n{n_ok} of {len(checks)} printed numbers agree within tolerance ({preset.name} preset)")
    print(f"report: {md}\n        {html}")
    return 0
