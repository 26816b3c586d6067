"""``refnet reproduce``: regenerate the papers' figures and numbers and write the report."""
from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import time
from pathlib import Path

from ..errors import ConfigError
from ..paths import check_output_folder
from ..reproduction.registry import ENVELOPE_SCRIPTS, PRESET_SCRIPTS, SCRIPTS
from ..reproduction.stages import collecting
from ._common import MAX_WORKERS, check_workers, existing_file, int_between, repeated, seed


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="quick", choices=list(PRESET_SCRIPTS),
                   help="quick: MNIST only, a smoke run of about a minute, not a reproduction; "
                        "full: everything; envelope: Duque 2024's unrecorded settings, one "
                        "training run per cell (default quick)")
    p.add_argument("--envelope", metavar="JSON",
                   type=existing_file("the envelope.json of `refnet reproduce --preset "
                                      "envelope`, or leave --envelope out"),
                   help="envelope.json of an envelope run: its ranges decide the verdict "
                        "'outside the envelope' (default: validation/reports/envelope/"
                        "envelope.json when present)")
    p.add_argument("--only", nargs="+", metavar="NAME", help=f"run only these: {', '.join(SCRIPTS)}")
    p.add_argument("--out", type=Path, help="output folder (default runs/reproduce-<preset>)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--workers", type=int_between(1, MAX_WORKERS, "worker processes"),
                   help="processes to run the training runs and sweeps of duque_fig4 and "
                        "the networks of semenova_fig5 on side by side, the figures being "
                        "drawn in one more (default: all cores; 1 = everything one after the "
                        "other in this process; at most the usable cores); the numbers do not "
                        "depend on it")
    p.add_argument("--list", action="store_true", help="list the validation scripts and exit")


def _load_state(path: Path, preset) -> dict:
    """What earlier runs into this folder computed; refuses a folder of another preset or seed."""
    from ..reproduction.results import read_run_state

    if not path.exists():
        return {"preset": preset.name, "seed": preset.seed, "scripts": {}}
    state = read_run_state(path)
    saved = (state["preset"], state["seed"])
    if saved != (preset.name, preset.seed):
        raise ConfigError(f"--out: {path.parent.parent} holds results of preset {saved[0]!r}, "
                          f"seed {saved[1]}; choose another --out for preset "
                          f"{preset.name!r}, seed {preset.seed}")
    return state


#: What a run writes into --out: the scripts' results, figures and trained models
#: (refnet.reproduction), and the report; each checked before any work.
_FOLDERS = ("results", "figures", "models")
_FILES = ("report.md", "report.html")
#: Where a checkout keeps the committed envelope summary (used when --envelope is not given).
DEFAULT_ENVELOPE = Path(__file__).resolve().parents[2] / "validation" / "reports" / "envelope" / "envelope.json"


def _envelope(args) -> dict | None:
    """The envelope summary (``envelope.json``) the verdicts use, or None; read and checked
    before any work (:func:`read_envelope`)."""
    path = args.envelope  # an existing file (existing_file), or None
    if path is None:
        path = DEFAULT_ENVELOPE if DEFAULT_ENVELOPE.is_file() else None
    if path is None:
        return None
    shown = os.path.relpath(path) if Path(path).is_absolute() else str(path)
    return read_envelope(path, shown, "--envelope")


def read_envelope(path, shown: str, flag: str) -> dict:
    """An ``envelope.json``: a JSON object mapping each quantity ("<dataset>/<quantity>") to
    an object with finite numbers ``lo <= hi`` and ``cells``, a list of [setting, value,
    number], each number finite and in ``[lo, hi]`` (the list may be empty), each setting one
    the envelope run moves and each value of a kind that setting's grid holds. Anything else
    is a :class:`ConfigError` naming ``flag`` and the file."""
    fix = ("give the envelope.json written by `refnet reproduce --preset envelope`, or leave "
           f"{flag} out")
    try:
        envelope = _checked_envelope(path, fix)
    except ConfigError as e:  # lead with the flag, as every other CLI message does
        raise ConfigError(f"{flag}: {e}") from None
    return {**envelope, "_path": shown}


def _checked_envelope(path, fix: str) -> dict:
    from ..npzfile import (WANT_LIST, BadContent, check_fields, file_errors, read_json_file,
                           want_number)

    number = want_number(-1e300, 1e300)  # finite: NaN, Infinity and 1e999 are refused
    kinds = _setting_kinds()
    with file_errors(path, ConfigError, fix):
        envelope = read_json_file(path, "the envelope summary")
        for key, entry in envelope.items():
            check_fields(entry, {"lo": number, "hi": number, "cells": WANT_LIST},
                         f"entry {key!r}", required=("lo", "hi", "cells"), extra=True)
            if entry["lo"] > entry["hi"]:  # an empty range: every paper value "outside"
                raise BadContent(f"entry {key!r}: the range lo = {entry['lo']!r} > hi = "
                                 f"{entry['hi']!r} is empty (lo is the smallest cell's value, "
                                 "hi the largest)")
            for i, c in enumerate(entry["cells"]):
                if not (isinstance(c, list) and len(c) == 3 and isinstance(c[0], str)
                        and number.ok(c[2])):
                    raise BadContent(f"entry {key!r}: 'cells' must be [setting, value, number] "
                                     f"lists, the number finite; cell {i} is not")
                # the report sorts a setting's cells by value: a kind its grid never holds
                # (null among epochs) is an edited file and would fail after the whole run
                if c[0] not in kinds:
                    raise BadContent(f"entry {key!r}: cell {i} names the setting {c[0]!r:.40}, "
                                     f"not one the envelope run moves ({', '.join(kinds)})")
                if _JSON_KINDS.get(type(c[1])) not in kinds[c[0]]:
                    raise BadContent(f"entry {key!r}: cell {i} gives the setting {c[0]} the "
                                     f"value {c[1]!r:.40} ({_JSON_KINDS.get(type(c[1]))}); "
                                     f"{c[0]} takes {' or '.join(sorted(kinds[c[0]]))}")
                # the range is the cells' span: a cell outside it is an edited or mixed file
                if not entry["lo"] <= c[2] <= entry["hi"]:
                    raise BadContent(f"entry {key!r}: cell {i} ({c[0]} = {c[1]!r:.40}) has the "
                                     f"value {c[2]!r}, outside the range lo = {entry['lo']!r} "
                                     f"to hi = {entry['hi']!r} (lo is the smallest cell's value, "
                                     "hi the largest)")
    return envelope


#: The kind of each value JSON gives, as messages say it.
_JSON_KINDS = {type(None): "null", bool: "a boolean", int: "a number", float: "a number",
               str: "a string", list: "a list", dict: "an object"}


def _setting_kinds() -> dict:
    """Each envelope setting -> the kinds of value its grid holds over the full preset's
    datasets (the cells the envelope run measures): quickdraw_per_class is a number or null
    (every mirror row), baseline_epochs a number, eq7_preset a string."""
    from ..reproduction.duque.envelope import SETTINGS, cells
    from ..reproduction.presets import get_preset

    kinds = {setting: set() for setting in SETTINGS}
    for setup in get_preset("full").duque:
        for cell in cells(setup):
            kinds[cell.setting].add(_JSON_KINDS[type(cell.value)])
    return kinds


def apply_envelope(check, envelope, preset=None):
    """``check`` with its envelope range, if the envelope measured its quantity, and the
    setting ``preset`` chose by outcome that moves it (``Preset.chosen_by_outcome``), if any."""
    from dataclasses import replace

    from ..reproduction.presets import chosen_setting

    key = getattr(check, "envelope_key", "")
    chosen = chosen_setting(preset, key) if preset is not None and key else None
    if chosen is not None:
        ds, setting, _ = chosen
        check = replace(check, chosen=f"{ds} {setting} = {getattr(preset.setup(ds), setting)}")
    if not envelope or not key or key not in envelope:
        return check
    e = envelope[key]
    cells = "; ".join(f"{c[0]} = {'all' if c[1] is None else c[1]}: {c[2]:.2f}"
                      for c in e["cells"])
    return replace(check, envelope=(e["lo"], e["hi"]), envelope_cells=cells)


def run(args) -> int:
    from refnet.io import atomic_write_bytes
    from refnet.reproduction.presets import get_preset
    from refnet.reproduction.registry import figure_module
    from refnet.reproduction.report import format_value, verdict_summary, write_report

    if args.list:
        print("\n".join(f"{s:16} {', '.join(p for p, ss in PRESET_SCRIPTS.items() if s in ss)}"
                        for s in SCRIPTS + ENVELOPE_SCRIPTS))
        return 0
    known = PRESET_SCRIPTS[args.preset]
    todo = args.only or list(known)
    unknown = [s for s in todo if s not in known]
    if unknown:
        raise ConfigError(f"--only: unknown {unknown} for preset {args.preset}; known: "
                          f"{', '.join(known)}")
    twice = repeated(todo)
    if twice:  # it ran twice (and was timed and reported as two runs of one name)
        raise ConfigError(f"--only: {', '.join(twice)} given twice; name each script once")
    check_workers(args.workers)
    preset = get_preset(args.preset, args.seed)
    if args.envelope is not None and preset.name != "full":
        raise ConfigError(f"--envelope: only --preset full uses an envelope (preset "
                          f"{preset.name!r} {'reads its own envelope.json' if preset.name == 'envelope' else 'has no verdicts against it'}); "
                          "leave --envelope out or use --preset full")
    out = args.out or Path("runs") / f"reproduce-{preset.name}"
    check_output_folder(out, "--out", folders=_FOLDERS, files=_FILES)
    state_path = out / "results" / "reproduce.json"
    state = _load_state(state_path, preset)
    # read before any work: a bad envelope must not cost the computation
    envelope = _envelope(args) if preset.name == "full" else None  # measured for full's settings
    t0 = time.perf_counter()
    stages = []   # (stage, seconds) of this run, printed at the end: where the time went
    plotter, background = _plotter(args.workers)
    with plotter:
        drawn = []   # (script, future of its plot's seconds)
        for name in todo:
            mod = figure_module(name)
            print(f"[{name}] computing (cached results in {out / 'results'} are reused)")
            t = time.perf_counter()
            with collecting() as parts:   # the parts a long script times inside its compute
                if "workers" in inspect.signature(mod.compute).parameters:  # runs tasks on workers
                    mod.compute(preset, out, workers=args.workers)
                else:
                    mod.compute(preset, out)
            seconds = time.perf_counter() - t
            stages.append((f"{name} compute", seconds, parts))
            drawn.append((name, plotter.submit(_plot, (name, str(out)))))
            if not background:
                stages.append((f"{name} plot", drawn[-1][1].result()))
                seconds = time.perf_counter() - t
            # the figure is drawn again by every run, so the script counts as done once computed
            state["scripts"][name] = {"seconds": round(seconds, 1)}
            atomic_write_bytes(state_path, json.dumps(state, indent=1).encode())
            print(f"[{name}] done in {seconds:.1f} s"
                  + (" (its figure is drawn in the background)" if background else ""))
        if background:
            t = time.perf_counter()
            plotted = [(f"{name} plot", f.result(), "busy") for name, f in drawn]
            stages.append(("figures: waiting for the background process", time.perf_counter() - t,
                           plotted))
    t_report = time.perf_counter()
    elapsed = t_report - t0
    # the report covers every script computed into this folder, by this run or earlier ones
    checks, figures = [], []
    for name in (s for s in known if s in state["scripts"]):
        c, f = figure_module(name).report(out, preset)
        checks += [apply_envelope(x, envelope, preset) for x in c]
        figures += f
    # the envelope preset's own summary backs its header's "chosen by outcome" ranges
    own = out / "envelope.json"
    header = report_header(preset, state, elapsed,
                           read_envelope(own, "envelope.json (beside this report)", "--out")
                           if preset.name == "envelope" and own.is_file() else envelope, known)
    write_report(out, checks, figures, header,
                 title=f"refnet reproduction report ({preset.name} preset)")
    if checks:
        print(f"\n{'quantity':78} {'paper':>9} {'refnet':>9}  verdict")
        for c in checks:
            print(f"{c.quantity[:78]:78} {format_value(c.paper, c.unit):>9} "
                  f"{format_value(c.refnet, c.unit):>9}  {c.verdict}")
    print(f"\n{verdict_summary(checks)} ({preset.name} preset)")
    print(f"report: {out / 'report.md'}\n        {out / 'report.html'}")
    stages.append(("report", time.perf_counter() - t_report))
    print(format_stage_times(stages))
    return 0


def _plotter(workers):
    """``(executor, background)``: where the figures are drawn. With more than one core (and
    ``--workers`` not 1) a process of its own draws each figure while the next script
    computes (matplotlib runs on one core, and the scripts after the training leave the other
    one mostly idle); else this process draws it right after its script's compute."""
    from refnet.cores import available_cores
    from refnet.sweep.executors import InProcess, LocalPool

    if workers == 1 or available_cores() < 2:
        return InProcess(), False
    return LocalPool(1), True


def _plot(task) -> float:
    """Draw the figure of ``task = (script, out)``; the seconds it took."""
    from refnet.reproduction.registry import figure_module

    name, out = task
    t = time.perf_counter()
    figure_module(name).plot(Path(out))
    return time.perf_counter() - t


def report_header(preset, state: dict, elapsed: float, envelope, known) -> dict:
    """The report's header lines: the preset, the machine, the times, the envelope used, every
    setting chosen by outcome (with its reason and envelope range) and what was not computed."""
    from refnet import __version__
    from refnet.reproduction.presets import chosen_by_outcome_lines

    header = {"preset": f"{preset.name}: {preset.notes}", "seed": preset.seed,
              "refnet version": __version__,
              "machine": f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}",
              "wall time of this run": f"{elapsed:.0f} s (cached parts are not recomputed)",
              "scripts (seconds when last computed)": ", ".join(
                  f"{k} ({v['seconds']:.0f} s)" for k, v in state["scripts"].items())}
    if envelope:
        header["envelope"] = f"{envelope['_path']} (settings envelope of Duque 2024's numbers)"
    if preset.chosen_by_outcome:
        header["chosen by outcome"] = " | ".join(chosen_by_outcome_lines(preset, envelope))
    not_run = [s for s in known if s not in state["scripts"]]
    if not_run:
        header["not computed in this folder"] = ", ".join(not_run)
    return header


def format_stage_times(stages) -> str:
    """The table of ``(stage, seconds[, parts])`` printed at the end of a run: each stage in
    run order with its seconds and share of the total, under it the parts the stage timed
    inside it (``(name, seconds)``, indented; what they leave out of the stage: "other"),
    then the total. Worker time (``(name, seconds, "busy")``, summed over processes that ran
    side by side) is shown as such and not subtracted: its share can pass the stage's."""
    total = sum(st[1] for st in stages)
    rows = []   # (indent, name, seconds)
    for name, s, *parts in stages:
        rows.append((2, name, s))
        parts = parts[0] if parts else []
        rows += [(4, f"{p[0]} (worker time)" if len(p) > 2 else p[0], p[1]) for p in parts]
        wall = [p[1] for p in parts if len(p) == 2]
        if wall:
            rows.append((4, "other", max(0.0, s - sum(wall))))
    width = max([i + len(n) for i, n, _ in rows] + [2 + len("total")])
    lines = ["", "time per stage (this run; cached results take ~0 s):"]
    for indent, name, s in rows:
        share = 100 * s / total if total > 0 else 0.0
        lines.append(f"{' ' * indent}{name:{width - indent}} {s:8.1f} s {share:5.1f} %")
    lines.append(f"  {'total':{width - 2}} {total:8.1f} s")
    return "\n".join(lines)
