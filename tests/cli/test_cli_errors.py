"""The command-line contract (issue #12): for every subcommand, bad input gives exit status 2,
exactly one line on stderr naming the flag or file, and no traceback (``--debug`` shows it)."""
import errno
import os
import subprocess
import sys

import numpy as np
import pytest

from refnet.cli import COMMANDS, build_parser, main
from refnet.io import save_model
from refnet.model import init_params, mlp

NAN_ROW = 37  # a row the internal train/validation split would renumber
TOO_LONG = f"cannot be used ({os.strerror(errno.ENAMETOOLONG)})"  # as the messages say it


@pytest.fixture
def files(tmp_path):
    """Paths (as strings) of a tiny model and of good and bad data files, by name."""
    rng = np.random.default_rng(0)
    arch = mlp((6, 8, 3), "sigmoid", "identity")
    f = {"model": save_model(tmp_path / "model.npz", arch, init_params(arch, "normal", rng=0))}
    X, y = rng.normal(size=(60, 6)), rng.integers(0, 3, 60)
    np.savez(f.setdefault("data", tmp_path / "data.npz"), X=X, y=y)
    np.savez(f.setdefault("short_labels", tmp_path / "short.npz"), X=X, y=y[:-7])
    Xn = X.copy()
    Xn[NAN_ROW, 2] = np.nan
    np.savez(f.setdefault("nan", tmp_path / "nan.npz"), X=Xn, y=y)
    np.savez(f.setdefault("nan_unlabelled", tmp_path / "nan_unlabelled.npz"), X=Xn)
    np.savez(f.setdefault("train", tmp_path / "train.npz"), X_train=X, y_train=y, X_test=X[:10],
             y_test=y[:10])
    np.savez(f.setdefault("train_nan", tmp_path / "train_nan.npz"), X_train=Xn, y_train=y,
             X_test=X[:10], y_test=y[:10])
    np.savez(f.setdefault("train_short", tmp_path / "train_short.npz"), X_train=X,
             y_train=y[:50], X_test=X[:10], y_test=y[:10])
    yf = y.astype(float)
    yf[11] = 1.5
    np.savez(f.setdefault("train_badlabel", tmp_path / "train_badlabel.npz"), X_train=X,
             y_train=yf, X_test=X[:10], y_test=y[:10])
    np.savez(f.setdefault("train_1d", tmp_path / "train_1d.npz"), X_train=X[:, 0], y_train=y,
             X_test=X[:10], y_test=y[:10])
    np.savez(f.setdefault("train_feat", tmp_path / "train_feat.npz"), X_train=X, y_train=y,
             X_test=X[:10, :5], y_test=y[:10])
    np.savez(f.setdefault("train_empty", tmp_path / "train_empty.npz"), X_train=X[:0],
             y_train=y[:0], X_test=X[:10], y_test=y[:10])
    yh = y.copy()
    yh[5] = 10 ** 9
    np.savez(f.setdefault("train_yhuge", tmp_path / "train_yhuge.npz"), X_train=X, y_train=yh,
             X_test=X[:10], y_test=y[:10])
    np.savez(f.setdefault("train_onefeat", tmp_path / "train_onefeat.npz"), X_train=X[:, :1],
             y_train=y, X_test=X[:10, :1], y_test=y[:10])
    # whole-number float labels (allowed), one test label beyond the model's 3 classes
    yt = y[:10].astype(float)
    yt[3] = 5.0
    np.savez(f.setdefault("train_float_labels", tmp_path / "train_float_labels.npz"), X_train=X,
             y_train=y.astype(float), X_test=X[:10], y_test=yt)
    y9 = y.copy()
    y9[4] = 9
    np.savez(f.setdefault("labels9", tmp_path / "labels9.npz"), X=X, y=y9)
    np.savez(f.setdefault("narrow", tmp_path / "narrow.npz"), X=X[:, :5], y=y)
    (f.setdefault("env_list", tmp_path / "env_list.json")).write_text("[1, 2]")
    (f.setdefault("env_cells", tmp_path / "env_cells.json")).write_text(
        '{"mnist/std_clean": {"lo": 1, "hi": 2, "cells": [[1, 2]]}}')
    for name, lo, hi in (("env_reversed", "2.5", "1"), ("env_nan", "NaN", "1"),
                         ("env_inf", "0", "Infinity"), ("env_huge", "-1e999", "1")):
        (f.setdefault(name, tmp_path / f"{name}.json")).write_text(
            '{"mnist/std_clean": {"lo": %s, "hi": %s, "cells": []}}' % (lo, hi))
    for name, cell in (("env_cell_nan", '["eq4_lambda", 0.006, NaN]'),
                       ("env_cell_inf", '["eq4_lambda", 0.006, -1e999]'),
                       ("env_cell_huge", '["eq4_lambda", 0.006, 1%s]' % ("0" * 400)),
                       ("env_cell_outside", '["baseline_epochs", 150, 2.5]')):
        (f.setdefault(name, tmp_path / f"{name}.json")).write_text(
            '{"mnist/std_clean": {"lo": 1, "hi": 2, "cells": [["eq4_lambda", 0, 1.5], %s]}}'
            % cell)
    # a hand-edited setting value: null among baseline_epochs' numbers (the header's sort of
    # that setting's cells raised TypeError after the whole run)
    (f.setdefault("env_cell_mixed", tmp_path / "env_cell_mixed.json")).write_text(
        '{"fashion-mnist/std_clean": {"lo": 1, "hi": 2, "cells": [["baseline_epochs", 50, 1.5],'
        ' ["baseline_epochs", null, 1.6]]}}')
    (f.setdefault("env_cell_setting", tmp_path / "env_cell_setting.json")).write_text(
        '{"mnist/std_clean": {"lo": 1, "hi": 2, "cells": [["epochs", 50, 1.5]]}}')
    np.save(f.setdefault("npy", tmp_path / "plain.npy"), X)
    (f.setdefault("garbage", tmp_path / "garbage.npz")).write_bytes(b"PK\x03\x04 not a zip")
    (f.setdefault("state", tmp_path / "rep" / "results" / "reproduce.json")).parent.mkdir(
        parents=True)
    f["state"].write_text("[1, 2]")
    f["rep"] = tmp_path / "rep"
    f["missing"] = tmp_path / "missing.npz"
    f["long"] = tmp_path / ("x" * 3000)  # stat raises OSError (ENAMETOOLONG), not "missing"
    os.mkfifo(f.setdefault("fifo", tmp_path / "fifo.npz"))
    # symbolic links leading nowhere: exists() says False, as for a free name
    os.symlink(tmp_path / "loop_b", f.setdefault("loop", tmp_path / "loop_a"))
    os.symlink(f["loop"], tmp_path / "loop_b")
    os.symlink(tmp_path / "nowhere" / "dir", f.setdefault("dangling", tmp_path / "dangling"))
    f["loop_to"], f["dangling_to"] = tmp_path / "loop_b", tmp_path / "nowhere" / "dir"
    (f.setdefault("sweep_baselines_file", tmp_path / "swb")).mkdir()
    (f["sweep_baselines_file"] / "baselines").write_text("")
    (f.setdefault("sweep_front_dir", tmp_path / "swf") / "report" / "front.md").mkdir(parents=True)
    (f.setdefault("evaluate_png_dir", tmp_path / "evo") / "accuracy.png").mkdir(parents=True)
    (f.setdefault("rep_results_file", tmp_path / "repo")).mkdir()
    (f["rep_results_file"] / "results").write_text("")
    with open(f.setdefault("huge_spec", tmp_path / "huge.toml"), "wb") as h:
        h.truncate(1 << 40)  # sparse: 1 TiB declared, nothing written
    f["dir"] = tmp_path
    f["out"] = tmp_path / "out"
    return {k: str(v) for k, v in f.items()}


# (argv with {file} placeholders, text the one line must contain)
CASES = {
    "reproduce": [
        ("reproduce --only fig99", "--only: unknown ['fig99']"),
        ("reproduce --only duque_fig4 semenova_fig3 duque_fig4 --out {out}",
         "--only: duque_fig4 given twice; name each script once"),
        ("reproduce --seed -1", "--seed: must be >= 0"),
        ("reproduce --preset huge", "argument --preset: invalid choice: 'huge'"),
        ("reproduce --only semenova_fig4 --out {rep}", "the run record must be a JSON object, got list"),
        ("reproduce --preset full --only semenova_fig6 --envelope {env_list} --out {out}",
         "--envelope: {env_list}: the envelope summary must be a JSON object, got list"),
        ("reproduce --preset full --only semenova_fig6 --envelope {env_cells} --out {out}",
         "--envelope: {env_cells}: entry 'mnist/std_clean': 'cells' must be [setting, value, number]"),
        ("reproduce --preset full --only semenova_fig6 --envelope {env_reversed} --out {out}",
         "--envelope: {env_reversed}: entry 'mnist/std_clean': the range lo = 2.5 > hi = 1 is "
         "empty"),
        ("reproduce --preset full --only semenova_fig6 --envelope {env_nan} --out {out}",
         "--envelope: {env_nan}: entry 'mnist/std_clean': 'lo' must be a finite number"),
        ("reproduce --preset full --only semenova_fig6 --envelope {env_inf} --out {out}",
         "--envelope: {env_inf}: entry 'mnist/std_clean': 'hi' must be a finite number"),
        ("reproduce --preset full --only semenova_fig6 --envelope {env_huge} --out {out}",
         "--envelope: {env_huge}: entry 'mnist/std_clean': 'lo' must be a finite number"),
        ("reproduce --preset full --only semenova_fig6 --envelope {env_cell_nan} --out {out}",
         "--envelope: {env_cell_nan}: entry 'mnist/std_clean': 'cells' must be [setting, value, "
         "number] lists, the number finite; cell 1 is not"),
        ("reproduce --preset full --only semenova_fig6 --envelope {env_cell_inf} --out {out}",
         "entry 'mnist/std_clean': 'cells' must be [setting, value, number] lists, the number "
         "finite; cell 1 is not"),
        ("reproduce --preset full --only semenova_fig6 --envelope {env_cell_huge} --out {out}",
         "entry 'mnist/std_clean': 'cells' must be [setting, value, number] lists, the number "
         "finite; cell 1 is not"),
        ("reproduce --preset full --only semenova_fig6 --envelope {env_cell_outside} --out {out}",
         "--envelope: {env_cell_outside}: entry 'mnist/std_clean': cell 1 (baseline_epochs = "
         "150) has the value 2.5, outside the range lo = 1 to hi = 2"),
        ("reproduce --preset full --only semenova_fig6 --envelope {env_cell_mixed} --out {out}",
         "--envelope: {env_cell_mixed}: entry 'fashion-mnist/std_clean': cell 1 gives the setting "
         "baseline_epochs the value None (null); baseline_epochs takes a number"),
        ("reproduce --preset full --only semenova_fig6 --envelope {env_cell_setting} --out {out}",
         "--envelope: {env_cell_setting}: entry 'mnist/std_clean': cell 0 names the setting "
         "'epochs', not one the envelope run moves (baseline_epochs, "),
        ("reproduce --preset full --only semenova_fig6 --envelope {data} --out {out}",
         "--envelope: {data}: the envelope summary is not UTF-8 text"),
        ("reproduce --preset full --only semenova_fig6 --envelope {missing} --out {out}",
         "argument --envelope: no such file: {missing} (give the envelope.json of `refnet "
         "reproduce --preset envelope`, or leave --envelope out)"),
        ("reproduce --preset quick --envelope {env_list}", "--envelope: only --preset full uses"),
        ("reproduce --out {model}", "--out: {model} is a file; give a folder"),
        ("reproduce --out {long}", f"xxx {TOO_LONG}; give another path"),
        # broken links were taken for free names: the folder was not made, after the work
        ("reproduce --out {dangling} --only semenova_fig4",
         "--out: {dangling} is a symbolic link to {dangling_to} that leads nowhere"),
        # what a run writes in --out, checked too: the script ran, then its results were not
        # saved ("[Errno 17] File exists: '.../results'")
        ("reproduce --out {rep_results_file} --only semenova_fig4",
         "--out: {rep_results_file}/results is a file; give a folder"),
    ],
    "train": [
        ("train --dataset foo", "--dataset: unknown dataset 'foo'"),
        ("train --n-train 0 --data-npz {train}", "--n-train: must be >= 1"),
        ("train --n-train 1000 --data-npz {train}", "--n-train: 1000 asked"),
        ("train --noise-type add_unc --data-npz {train}", "--noise-type add_unc needs --noise-variance"),
        ("train --noise-type add_unc --noise-variance 0 --data-npz {train}", "needs --noise-variance V > 0"),
        ("train --noise-type add_unc --noise-variance -0.1", "variance must be >= 0"),
        ("train --noise-variance 0.1 --data-npz {train}", "--noise-variance needs --noise-type"),
        ("train --noise-type add_unk --noise-variance 0.1", "--noise-type: invalid choice"),
        ("train --lam 0.1 --data-npz {train}", "--lam needs --regularizer"),
        ("train --hidden 16,x", "--hidden: not an integer: 'x'"),
        ("train --epochs -1", "--epochs: must be >= 1"),
        ("train --epochs 1000000001", "--epochs: must be <= 1000000000 (epochs)"),
        ("train --batch-size 1000000001", "--batch-size: must be <= 1000000000"),
        ("train --seed 18446744073709551616", "--seed: must be <= 18446744073709551615"),
        ("evaluate {model} --data {data} --seed 18446744073709551616", "--seed: must be <= "),
        ("train --lr 0", "--lr: must be a finite number > 0"),
        ("train --data-npz {missing}", "--data-npz: no such file"),
        ("train --data-npz {long}", f"argument --data-npz: {TOO_LONG}: "),
        ("train --data-npz {train} --out {long}", f"xxx {TOO_LONG}; give another path"),
        ("train --data-npz {train} --init-from {fifo}", "--init-from: not a regular file: {fifo}"),
        ("train --data-npz {garbage}", "cannot be read (BadZipFile"),
        ("train --data-npz {npy}", "a plain .npy array"),
        ("train --data-npz {data}", "lacks ['X_train', 'y_train', 'X_test', 'y_test']"),
        ("train --data-npz {train_nan}", f"X_train[{NAN_ROW}] (row {NAN_ROW} of the file"),
        ("train --data-npz {train_short}", "X_train has 60 rows but y_train has shape (50,)"),
        ("train --data-npz {train_badlabel}", "y_train[11] (row 11 of the file"),
        ("train --data-npz {train} --dataset mnist", "not allowed with argument --data-npz"),
        ("train --data-npz {train_1d}", "array X_train must be numeric (n_samples, n_features), "
                                        "got dtype float64, shape (60,); one feature per row"),
        ("train --data-npz {train_feat} --epochs 3", "train_feat.npz: array X_test has 5 "
                                                     "features per row (shape (10, 5)), the model takes 6"),
        ("train --data-npz {train_empty}", "train_empty.npz: array X_train has shape (0, 6), no data"),
        ("train --data-npz {train_yhuge}", "train_yhuge.npz: label 1000000000 means 1000000001 classes"),
        ("train --data-npz {train} --out {model}/x.npz", "--out: " + "{model}/x.npz lies under the file"),
        ("train --data-npz {train} --out {dir}", "--out: {dir} is a folder; give a file name"),
        ("train --data-npz {train} --out {loop}/m.npz", "--out: {loop}/m.npz lies under {loop}, "
                                                        "which is a symbolic link to {loop_to} that "
                                                        "leads nowhere (its target is missing, or "
                                                        "the links form a loop)"),
        ("train --data-npz {train} --checkpoint {dangling}/c.npz",
         "--checkpoint: {dangling}/c.npz lies under {dangling}, which is a symbolic link"),
        ("train --data-npz {train} --checkpoint {model}/c", "--checkpoint: {model}/c lies under"),
        ("train --data-npz {train_onefeat} --hidden 1048577",
         "--hidden: a layer of width 1048577 (layer sizes [1, 1048577, 3]) is wider than the 1048576"),
        ("train --data-npz {train} --hidden 40000,40000", "--hidden: layer sizes [6, 40000, 40000, 3] "
                                                          "have 1600440003 weights and biases, 11.9 GiB"),
        ("train --data-npz {train} --hidden " + ",".join(["2"] * 64), "--hidden: 65 weight layers"),
        ("train --data-npz {train} --init-from {model} --hidden 50,50",
         "--hidden 50,50 conflicts with --init-from {model}, whose hidden layers are 8"),
        ("train --data-npz {train} --init-from {model} --activation cubic",
         "--activation cubic conflicts with --init-from"),
        # named the activation but not the flag ("activation: unknown activation 'tanh'")
        ("train --data-npz {train} --activation tanh",
         "argument --activation: unknown activation 'tanh'; known: 'sigmoid'"),
        ("train --data-npz {train_onefeat} --init-from {model}", "1 features per row, the --init-from"),
        ("train --data-npz {train} --hidden ,", "--hidden: no layer size given"),
        # float labels went unchecked against the model; training ran, then failed
        ("train --data-npz {train_float_labels} --init-from {model}",
         "--data-npz: {train_float_labels}: test label 5 is not a class of the --init-from model"),
        ("train --dataset mackey-glass --hidden 4", "--dataset mackey-glass: its targets are real "
                                                    "numbers (a regression dataset)"),
        # a penalty added twice; a code set for two hidden layers failing at the first step
        ("train --data-npz {train} --regularizer eq4 --regularizer eq4 --lam 0.1",
         "--regularizer: eq4 given twice (its penalty would be added twice)"),
        ("train --data-npz {train} --hidden 4 --regularizer addunc_sigm_mnist",
         "--regularizer addunc_sigm_mnist: does not fit a network of 2 weight layers"),
        ("train --data-npz {train} --regularizer eq4", "--regularizer eq4: the preset has no "
                                                       "published lambda; give one with --lam"),
        # a NUL character (main(argv) from Python): exists() said False, the checks passed and
        # the model was not written after the whole training ("embedded null byte")
        ("train --data-npz {train} --out {out}\x00.npz", "--out: '{out}\\x00.npz' cannot be used "
                                                         "(a NUL character in the name)"),
        ("train --data-npz {train} --checkpoint {out}\x00", "--checkpoint: '{out}\\x00' cannot be "
                                                            "used (a NUL character"),
        ("train --data-npz {out}\x00", "argument --data-npz: cannot be used (a NUL character in the "
                                       "name)"),
        # an output that is an input: replaced by the model, or read back as a checkpoint
        ("train --data-npz {train} --out {train}", "--out: {train} is also the --data-npz file, "
                                                   "which this command reads"),
        ("train --data-npz {train} --init-from {model} --out {model}",
         "--out: {model} is also the --init-from file"),
        ("train --data-npz {train} --checkpoint {train}", "--checkpoint: {train} is also the "
                                                          "--data-npz file"),
        ("train --data-npz {train} --checkpoint {out}.npz --out {out}.npz",
         "--out: {out}.npz is also the --checkpoint file"),
    ],
    "evaluate": [
        ("evaluate {model} --data {data} --levels -1,0.1", "--levels: variance must be >= 0"),
        ("evaluate {model} --data {data} --levels 0.1,nan", "variance must be finite"),
        ("evaluate {model} --data {data} --variances 0", "--variances: must be >= 1"),
        ("evaluate {model} --data {data} --repetitions 100000000000",
         "--repetitions: must be <= 10000"),
        ("evaluate {model} --data {data} --workers 100000000000", "--workers: must be <= 1024"),
        ("evaluate {model} --data {data} --noise-types add_unk", "--noise-types: unknown noise type"),
        ("evaluate {model} --data {data} --noise-types add_unc,mul_cor,add_unc",
         "--noise-types: add_unc given twice"),
        ("evaluate {model} --data {data} --vmin 1 --vmax 0.1", "--vmin/--vmax"),
        ("evaluate {model} --data {data} --vmin 0.5 --vmax 0.5 --variances 3",
         "--variances 3: from --vmin 0.5 to --vmax 0.5 there are 1 distinct variance(s), not 3"),
        ("evaluate {model} --data {data} --levels 0.1 --vmin 0.01", "--vmin: not used with --levels"),
        ("evaluate {model} --data {data} --vmax 2 --levels 0.1 --vmin 0.5",
         "--vmin/--vmax: not used with --levels"),
        ("evaluate {model} --data {nan}", f"X[{NAN_ROW}] (row {NAN_ROW} of the file"),
        ("evaluate {model} --data {short_labels}", "X has 60 rows but y has shape (53,)"),
        ("evaluate {model} --dataset cifar", "--dataset: unknown dataset 'cifar'"),
        ("evaluate {missing} --data {data}", "no such file"),
        ("evaluate {model} --data {long}", f"argument --data: {TOO_LONG}: "),
        ("evaluate {model} --data {data} --out {long}", f"xxx {TOO_LONG}; give another path"),
        ("evaluate {garbage} --data {data}", "garbage.npz"),
        ("evaluate {model}", "one of the arguments --dataset --data is required"),
        ("evaluate {model} --data {data} --out {model}", "--out: {model} is a file; give a folder"),
        ("evaluate {model} --data {data} --out {dangling}", "--out: {dangling} is a symbolic link "
                                                            "to {dangling_to} that leads nowhere"),
        ("evaluate {model} --data {data} --out {loop}", "--out: {loop} is a symbolic link to "
                                                        "{loop_to} that leads nowhere"),
        ("evaluate {model} --data {data} --out {loop}/x", "--out: {loop}/x lies under {loop}"),
        # the passes ran, accuracy.csv was written, then "[Errno 21] Is a directory"
        ("evaluate {model} --data {data} --out {evaluate_png_dir}",
         "--out: {evaluate_png_dir}/accuracy.png is a folder; give a file name"),
        ("evaluate {model} --data {data} --variances 100000000", "--variances: at most 10000 variances"),
        ("evaluate {model} --data {data} --variances 10000 --repetitions 10000",
         "--variances/--repetitions/--noise-types: 10000 variances x 10000 repetitions x 4 noise "
         "types = 400,000,000 passes, at most 10,000,000"),
        ("evaluate {model} --data {labels9}", "labels9.npz: y[4] (row 4 of the file, counting from 0) "
                                              "is not a class of the model (labels 0..2)"),
        ("evaluate {model} --data {train_1d}", "lacks ['X', 'y']"),
        ("evaluate {model} --data {data} --batch-size 1000000001", "--batch-size: must be <= "
                                                                   "1000000000 (rows per batch)"),
        ("evaluate {model} --dataset mackey-glass", "--dataset mackey-glass: its targets are real "
                                                    "numbers"),
        ("evaluate {model} --data {data} --threads 1", "--threads: numba's threads over rows of "
                                                       "--backend numba-parallel, no effect with "
                                                       "--backend numba"),
        ("evaluate {model} --data {data} --backend numpy --threads 1", "no effect with --backend "
                                                                       "numpy"),
        ("evaluate {model} --data {data} --out {out}\x00", "--out: '{out}\\x00' cannot be used (a "
                                                           "NUL character in the name)"),
    ],
    "sensitivity": [
        ("sensitivity {model} --inputs {data} --variance -0.1", "--variance: variance must be >= 0"),
        ("sensitivity {model} --inputs {short_labels}", "X has 60 rows but y has shape (53,)"),
        ("sensitivity {model} --inputs {nan} --n-inputs 50", f"X[{NAN_ROW}] (row {NAN_ROW} of the file"),
        # no labels and a bad row: the error alone, not the no-labels note before it
        ("sensitivity {model} --inputs {nan_unlabelled}", f"X[{NAN_ROW}] (row {NAN_ROW} of the file"),
        ("sensitivity {model} --inputs {data} --x-key Z", "--x-key Z: {data} has no array 'Z' "
                                                          "(its arrays: X, y); give --x-key one"),
        ("sensitivity {model} --inputs {data} --y-key labels", "--y-key labels: {data} has no "
                                                               "array 'labels' (its arrays: X, y)"),
        # one array as inputs and labels: "X has 60 rows but X has shape (60, 784)"
        ("sensitivity {model} --inputs {data} --y-key X", "--y-key: 'X' names the input array "
                                                          "too (--x-key, its default); give the"),
        ("sensitivity {model} --inputs {data} --x-key y --y-key y", "--y-key: 'y' names the "
                                                                    "input array too (--x-key);"),
        ("sensitivity {model} --dataset mnist --y-key y", "--y-key: name arrays of an --inputs"),
        ("sensitivity {model} --dataset mnist --x-key X --y-key y", "--x-key/--y-key: name arrays"),
        ("sensitivity {model} --inputs {data} --spec add_unc=x", "--spec: expected VARIANCES"),
        # Python's words were the reason: "dictionary update sequence element #0 has length 1"
        # and "NoiseSpec.__init__() got an unexpected keyword argument 'bogus'"
        ("sensitivity {model} --inputs {data} --spec add_unc=x", "(add_unc: not a number: 'x')"),
        ("sensitivity {model} --inputs {data} --spec bogus=1", "got 'bogus=1' (unknown noise "
         "type 'bogus'; the types are add_unc, add_cor, mul_unc, mul_cor)"),
        ("sensitivity {model} --inputs {data} --spec add_unc", "got 'add_unc' ('add_unc' is not "
                                                               "one TYPE=VARIANCE)"),
        ("sensitivity {model} --inputs {data} --spec add_unc=1=2", "('add_unc=1=2' is not one "
                                                                   "TYPE=VARIANCE)"),
        ("sensitivity {model} --inputs {data} --spec add_unc=-1", "must be >= 0"),
        ("sensitivity {model} --inputs {data} --spec add_unc=0.1 --variance 0.1", "--spec replaces"),
        ("sensitivity {model} --inputs {data} --mc-trials -1", "--mc-trials: must be >= 0"),
        ("sensitivity {model} --dataset foo", "--dataset: unknown dataset 'foo'"),
        ("sensitivity {missing} --inputs {data}", "no such file"),
        ("sensitivity {model} --inputs {labels9}", "--inputs: {labels9}: y[4] (row 4 of the file, "
                                                   "counting from 0) is not a class of the model"),
        # the first 60 rows were used in silence
        ("sensitivity {model} --inputs {data} --n-inputs 61", "--n-inputs 61: --inputs {data} "
         "has only 60 rows; give --n-inputs 60 or fewer"),
        ("sensitivity {model} --inputs {data} --mc-trials 1", "--mc-trials: give 0 (analytic only) or 2.."),
        ("sensitivity {model} --inputs {data} --mc-trials 100000000000", "--mc-trials: give 0"),
        ("sensitivity {model} --inputs {data} --mc-trials 1000000", "--mc-trials 1000000: the "
                                                                    "Monte-Carlo outputs of 60 inputs"),
        ("sensitivity {model} --inputs {data} --preset semenova --variance 1e308", "--variance/--spec: the noise "
                                                                 "variances"),
    ],
    "sweep": [
        ("sweep {missing} --out {out}", "no such spec file"),
        # read whole before any check: a MemoryError traceback (or all the memory it fits in)
        ("sweep {huge_spec} --out {out}", "{huge_spec}: 1099511627776 bytes, more than a spec's "
                                          "ceiling of 16777216; give the sweep's spec"),
        ("sweep --out {out} --set nonsense=1", "unknown key 'nonsense'"),
        ("sweep --out {out} --set eq4_lambda=-1", "grid.eq4_lambda[0]: expected a finite number"),
        ("sweep --out {out} --best drop<1pp", "--best 'drop<1pp': not a constraint"),
        ("sweep --out {out} --halving x", "--halving 'x': expected ETA"),
        ("sweep --out {out} --workers 0", "--workers: must be >= 1"),
        ("sweep --out {out} --workers 100000000000", "--workers: must be <= 1024"),
        ("sweep --out {dir}", "no sweep store here"),
        ("sweep --out {model} --set eq4_lambda=0", "--out: {model} is a file; give a folder"),
        ("sweep --out {out} --set eq4_lambda=0 --report-dir {model}",
         "--report-dir: {model} is a file; give a folder"),
        ("sweep --out {long} --set eq4_lambda=0", f"xxx {TOO_LONG}; give another path"),
        ("sweep --out {dangling} --set eq4_lambda=0", "--out: {dangling} is a symbolic link"),
        # the baseline was trained, then not saved: "[Errno 17] File exists: '.../baselines'"
        ("sweep --out {sweep_baselines_file} --set data.dataset=synthetic --set data.hidden=4 "
         "--set data.baseline_epochs=1 --set epochs=1",
         "--out: {sweep_baselines_file}/baselines is a file; give a folder"),
        # the whole sweep ran, then its report was not written ("Is a directory")
        ("sweep --out {sweep_front_dir} --set data.dataset=synthetic --set data.hidden=4 "
         "--set data.baseline_epochs=1 --set epochs=1",
         "--out: {sweep_front_dir}/report/front.md is a folder; give a file name"),
        ("sweep --out {out} --set eq4_lambda=0 --report-dir {loop}/r",
         "--report-dir: {loop}/r lies under {loop}, which is a symbolic link"),
        ("sweep --out {model}", "--out: {model}/report lies under the file {model}"),
        ("sweep --out {dir} --report-dir {model}", "--report-dir: {model} is a file; give a"),
        ("sweep {out}\x00.toml --out {out}", "\x00.toml: cannot be used (a NUL character in the "
                                            "name); give the path of a .toml or .json spec"),
        # flags of computing, ignored without a word when there was nothing to compute
        ("sweep --out {dir} --halving 3", "--halving: no effect without a SPEC (or --set): this "
                                          "only reports on the sweep in {dir}"),
        ("sweep --out {dir} --workers 2 --scheduler tcp://127.0.0.1:1",
         "--workers/--scheduler: no effect without a SPEC"),
        ("sweep --out {out} --set eq4_lambda=0 --workers 2 --scheduler tcp://127.0.0.1:1",
         "--workers: local worker processes, no effect with --scheduler"),
    ],
    "fetch": [
        ("fetch mnits", "argument DATASET: unknown dataset 'mnits'"),
        ("fetch --per-class 0", "--per-class: must be >= 1"),
        ("fetch --timeout x", "--timeout: not a number"),
        ("fetch --timeout 1e300", "--timeout: must be at most 86400 seconds (a day)"),
        # tried, found lacking, and passed over for the hosts (or never looked at): unnoticed
        ("fetch mnist --mirror {missing} --cache-dir {out}", "--mirror: {missing}: no such folder; "
                                                             "give the folder holding the dataset"),
        ("fetch mnist --mirror {model} --cache-dir {out}", "--mirror: {model}: a file, not a "
                                                           "folder"),
        # every source was tried and failed on it ("File exists"), each over the network
        ("fetch mnist --cache-dir {dangling}", "--cache-dir (cache_dir): the cache folder "
                                               "{dangling} is a symbolic link to {dangling_to} "
                                               "that leads nowhere"),
        ("fetch mnist --cache-dir {out}\x00", "--cache-dir (cache_dir): the cache folder "
                                              "'{out}\\x00' has a NUL character in its name"),
    ],
    "info": [
        ("info {missing}", "no such file"),
        ("info {dir}", "is a folder"),
        ("info {long}", f"argument model: {TOO_LONG}: "),
        ("info {fifo}", "argument model: not a regular file: {fifo} (give a model .npz"),
        ("info {garbage}", "garbage.npz"),
        ("info {model} --naming fc", "--naming needs --export-state-dict"),
        ("info {model} --export-state-dict {out} --naming xyz", "--naming: invalid choice: 'xyz'"),
        ("info {model} --export-state-dict {out}", "unknown weight file type ''"),
        ("info {model} --export-state-dict {loop}/x.safetensors",
         "--export-state-dict: {loop}/x.safetensors lies under {loop}, which is a symbolic link"),
        ("info {model} --export-state-dict {model}", "--export-state-dict: {model} is also the "
                                                     "model file, which this command reads"),
    ],
    # errors found when the mode runs; argparse's own (refnet crosscheck MODE: error: ...) are
    # in tests/crosscheck/test_crosscheck.py
    "crosscheck": [
        ("crosscheck make {model} -o {dir}/b.pt", "b.pt: unknown bundle file type '.pt'"),
        ("crosscheck make {model} -o {out}.npz --variances add_unc=x", "--variances: expected"),
        ("crosscheck make {model} -o {out}.npz --variances add_unc=-1", "must be >= 0"),
        ("crosscheck make {model} -o {out}.npz --layer-variances 1:",
         "--layer-variances '1:': expected VARIANCES like 'add_unc=0.01,mul_cor=0.001', got ''"),
        ("crosscheck make {model} -o {out}.npz --layer-variances x:add_unc=0.1",
         "--layer-variances: expected 'L:add_unc=0.02', got 'x:add_unc=0.1' (the layer 'x' is "
         "not an integer)"),
        ("crosscheck make {model} -o {out}.npz --layer-variances 5:add_unc=0.1",
         "--layers/--layer-variances: layer_specs: layer 5"),
        ("crosscheck make {model} -o {out}.npz --data {nan}", f"X[{NAN_ROW}] (row {NAN_ROW} of"),
        ("crosscheck make {model} -o {out}.npz --data {narrow}",
         "--data: {narrow}: array X has 5 features per row (shape (60, 5)), the model takes 6"),
        ("crosscheck make {model} -o {out}.npz --data {labels9}",
         "--data: {labels9}: y[4] (row 4 of the file, counting from 0) is not a class of the "
         "model (labels 0..2)"),
        ("crosscheck make {model} -o {out}.npz --data {data} --batch 61",
         "--batch 61: --data {data} has only 60 rows; give --batch 60 or fewer"),
        # the activations of a bare state dict: a refnet model records its own (they were
        # ignored without a word)
        ("crosscheck make {model} -o {out}.npz --hidden cubic", "--hidden: no effect: {model} "
         "records its activations (a refnet model); leave out --hidden"),
        ("crosscheck make {model} -o {out}.npz --hidden sigmoid --output identity",
         "--hidden/--output: no effect: {model} records its activations"),
        ("crosscheck make {garbage} -o {out}.npz", "garbage.npz"),
        ("crosscheck check {model}", "not a refnet cross-check bundle"),
        ("crosscheck stat {model} --samples {data}", "not a refnet cross-check bundle"),
        ("crosscheck make {model} -o {long}.npz", f"xxx.npz {TOO_LONG}; give another path"),
        ("crosscheck make {model} -o {model}", "-o/--out: {model} is also the model file"),
        ("crosscheck make {model} -o {dangling}/b.npz", "-o/--out: {dangling}/b.npz lies under "
                                                        "{dangling}, which is a symbolic link"),
        ("crosscheck make {model} -o {data} --data {data}", "-o/--out: {data} is also the --data "
                                                            "file"),
    ],
}


def _one_clean_line(err: str) -> str:
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_every_subcommand_has_bad_argument_cases():
    assert set(CASES) == set(COMMANDS)


@pytest.mark.parametrize("template, expected",
                         [c for name in CASES for c in CASES[name]],
                         ids=[t.split()[0] + ":" + e[:30] for n in CASES for t, e in CASES[n]])
def test_bad_input_is_one_line_and_exit_2(template, expected, files, capsys):
    argv = [a.format(**files) for a in template.split()]
    assert main(argv) == 2
    captured = capsys.readouterr()
    line = _one_clean_line(captured.err)
    assert expected.format(**files) in line
    assert line.startswith(f"refnet {argv[0]}: error: ")


@pytest.mark.parametrize("template", [t for n in CASES for t, _ in CASES[n] if "{long}" in t])
def test_a_path_too_long_is_shown_shortened(template, files, capsys):
    """A 3000-character path raised OSError from is_file/exists: a traceback, or a line
    holding all of it."""
    assert main([a.format(**files) for a in template.split()]) == 2
    line = _one_clean_line(capsys.readouterr().err)
    assert len(line) < 400 and "x" * 60 not in line, line


@pytest.mark.parametrize("name", list(COMMANDS))
def test_unknown_option_of_every_subcommand(name, capsys):
    assert main([name, "--no-such-option"]) == 2
    line = _one_clean_line(capsys.readouterr().err)  # a missing required argument comes first
    assert "unrecognized arguments: --no-such-option" in line or "are required" in line


@pytest.mark.parametrize("argv, expected", [([], "give a COMMAND"),
                                            (["bogus"], "invalid choice: 'bogus'")])
def test_top_level_usage_errors(argv, expected, capsys):
    assert main(argv) == 2
    assert expected in _one_clean_line(capsys.readouterr().err)


def _refnet(*argv):
    return subprocess.run([sys.executable, "-m", "refnet.cli", *argv], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("template, expected", [
    ("info {missing}", "missing.npz"),
    ("train --dataset foo", "--dataset"),
    ("sensitivity {model} --inputs {data} --variance -0.1", "variance must be >= 0"),
    ("evaluate {model} --data {nan}", f"row {NAN_ROW} of the file"),
])
def test_no_traceback_from_the_real_process(template, expected, files):
    r = _refnet(*(a.format(**files) for a in template.split()))
    assert r.returncode == 2 and expected in _one_clean_line(r.stderr), r.stderr


@pytest.fixture
def chatty_model(tmp_path):
    """A model whose ``info --json`` is far longer than a pipe's buffer (64 KiB on Linux)."""
    arch = mlp((6, 8, 3), "sigmoid", "identity")
    return str(save_model(tmp_path / "chatty.npz", arch, init_params(arch, "normal", rng=0),
                          {"notes": ["x" * 100] * 5000}))


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("argv", [
    ("info", "--json", "{chatty}"),   # fails while printing, inside the command
    ("info", "{model}"),              # fits the buffer: fails at the last flush
    ("--help",),                      # argparse prints it and exits
], ids=["long-output", "short-output", "help"])
def test_a_closed_stdout_ends_quietly_with_141(argv, buffered, files, chatty_model):
    """``refnet ... | head -1``: the reader closing its end is not an error of the user's. It
    printed "refnet info: error: [Errno 32] Broken pipe", or, for output still buffered,
    "Exception ignored ... BrokenPipeError" at shutdown with exit status 120; --help
    unbuffered ended 0, as if all of it had been read."""
    argv = [a.format(chatty=chatty_model, **files) for a in argv]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "refnet.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    proc.stdout.close()  # before Python has even started: no reader for anything it prints
    _, err = proc.communicate(timeout=120)
    assert (proc.returncode, err) == (141, "")


@pytest.mark.parametrize("code", [errno.EPIPE, errno.ESHUTDOWN])
def test_a_broken_pipe_of_the_work_is_an_error_in_process(code, monkeypatch, capsys):
    """A BrokenPipeError from anything but stdout (a worker's pipe, the socket to a Dask
    scheduler) ended the command silently with 141, as if stdout's reader had gone."""
    from refnet.cli import info

    def run(args):
        print("some output")
        raise BrokenPipeError(code, os.strerror(code))

    monkeypatch.setattr(info, "run", run)
    assert main(["info", __file__]) == 1
    captured = capsys.readouterr()
    line = _one_clean_line(captured.err)
    assert line.startswith("refnet info: error: ") and os.strerror(code) in line
    assert captured.out == "some output\n"


#: ``refnet info`` in a child process whose run writes to a pipe of its own whose reader has
#: gone (as a worker's pipe or a scheduler's socket breaks) after printing a line to stdout.
_WORK_PIPE_BREAKS = """
import os, sys
from refnet.cli import info, main
def run(args):
    print("some output")
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "wb") as pipe:
        pipe.write(b"x")
        pipe.flush()
info.run = run
sys.exit(main(["info", sys.argv[1]]))
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGPIPE and poll are POSIX")
@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
def test_a_broken_pipe_of_the_work_is_an_error_in_a_real_process(buffered, files):
    """Real pipes: stdout open and read, another pipe's reader gone. Exit 1 and the one line;
    the output printed before is there."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    r = subprocess.run([sys.executable, "-c", _WORK_PIPE_BREAKS, files["model"]],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 1, r.stderr
    expected = f"refnet info: error: [Errno {errno.EPIPE}] {os.strerror(errno.EPIPE)}"
    assert _one_clean_line(r.stderr) == expected
    assert r.stdout == "some output\n"


def test_debug_shows_the_traceback(files):
    r = _refnet("--debug", "evaluate", files["model"], "--data", files["nan"])
    assert r.returncode == 2 and "Traceback" in r.stderr
    assert r.stderr.rstrip().splitlines()[-1].startswith("refnet evaluate: error: ")


@pytest.mark.parametrize("error, status, expected", [
    ("diverged", 1, "training diverged at epoch 2"),   # the work failed: not a usage error
    # info resumes nothing: it was told "Run the same command again to resume"
    ("interrupt", 130, "interrupted; no file was left half-written"),
])
def test_failure_and_interrupt_statuses(error, status, expected, monkeypatch, capsys):
    from refnet.cli import info
    from refnet.errors import TrainingDiverged

    def run(args):
        if error == "interrupt":
            raise KeyboardInterrupt
        raise TrainingDiverged("training diverged at epoch 2, batch 5 (loss inf)")

    monkeypatch.setattr(info, "run", run)
    assert main(["info", __file__]) == status
    assert expected in _one_clean_line(capsys.readouterr().err)


def test_a_ctrl_c_while_the_command_loads_is_one_line(monkeypatch, capsys):
    """Ctrl-C in the first second of `refnet reproduce` (numpy, numba and the subcommands
    loading) ended in a traceback of importlib frames: now the package and the command's
    entry load nothing heavy (tested below), and an interrupt while the parser is built is
    one line with status 130."""
    import refnet.cli

    def loading(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(refnet.cli, "build_parser", loading)
    assert main(["reproduce", "--preset", "quick"]) == 130
    assert _one_clean_line(capsys.readouterr().err) == ("interrupted before the command "
                                                        "started; nothing was written.")


def test_the_command_entry_imports_no_numpy_before_main():
    code = ("import sys, refnet, refnet.cli; heavy = sorted({'numpy', 'numba', 'scipy'} & "
            "set(sys.modules)); print(heavy); from refnet import forward; print(callable(forward))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["[]", "True"]


@pytest.mark.parametrize("command, flags, expected", [
    ("sweep", [], "Run the same command again to resume"),
    ("train", ["--checkpoint", "c.npz"], "Run the same command again to resume"),
    ("train", [], "without --checkpoint nothing of the run is kept"),
    ("evaluate", [], "no file was left half-written"),
])
def test_the_interrupt_line_says_resume_only_where_a_run_resumes(command, flags, expected,
                                                                 monkeypatch, capsys, files):
    import importlib

    module = importlib.import_module(f"refnet.cli.{command}")

    def run(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "run", run)
    argv = {"sweep": ["sweep", "--out", "somewhere"],
            "train": ["train", "--data-npz", files["train"]],
            "evaluate": ["evaluate", files["model"], "--data", files["data"]]}[command]
    assert main(argv + flags) == 130
    assert expected in _one_clean_line(capsys.readouterr().err)


@pytest.mark.parametrize("template", [t for t, _ in CASES["train"]
                                      if "{train" in t or "mackey" in t])
def test_train_refuses_bad_input_before_training_and_writes_nothing(template, files, tmp_path,
                                                                    monkeypatch, capsys):
    import refnet.train
    monkeypatch.setattr(refnet.train, "train", lambda *a, **k: pytest.fail("training started"))
    out = tmp_path / "new_model.npz"
    argv = [a.format(**files) for a in template.split()]
    if "--out" not in argv:
        argv += ["--out", str(out)]
    assert main(argv) == 2
    _one_clean_line(capsys.readouterr().err)
    assert not out.exists()


@pytest.mark.parametrize("template", [t for n in CASES for t, e in CASES[n] if "is also the" in e])
def test_an_output_that_is_an_input_leaves_the_input_untouched(template, files, capsys):
    """The model (or state dict, or bundle) was written over the data or model it came from."""
    before = {k: open(files[k], "rb").read() for k in ("train", "model", "data")}
    assert main([a.format(**files) for a in template.split()]) == 2
    _one_clean_line(capsys.readouterr().err)
    assert before == {k: open(files[k], "rb").read() for k in before}


def test_evaluate_refuses_a_file_as_out_before_any_work(files, monkeypatch, capsys):
    import refnet.montecarlo
    monkeypatch.setattr(refnet.montecarlo, "accuracy_sweep", lambda *a, **k: pytest.fail("ran"))
    before = open(files["model"], "rb").read()
    assert main(["evaluate", files["model"], "--data", files["data"], "--out", files["model"]]) == 2
    assert open(files["model"], "rb").read() == before


def test_resuming_a_checkpoint_with_other_data_is_refused(files, tmp_path, capsys):
    ck, out = str(tmp_path / "c.ckpt"), str(tmp_path / "m.npz")
    common = ["--hidden", "4", "--quiet", "--checkpoint", ck, "--out", out]
    assert main(["train", "--data-npz", files["train"], "--epochs", "1", *common]) == 0
    capsys.readouterr()
    np.savez(tmp_path / "other.npz", **{k: v[::-1] for k, v in np.load(files["train"]).items()})
    assert main(["train", "--data-npz", str(tmp_path / "other.npz"), "--epochs", "2", *common]) == 2
    assert "c.ckpt: checkpoint: was written while training on other data" in \
        _one_clean_line(capsys.readouterr().err)


def test_resuming_a_checkpoint_from_another_init_model_is_refused(files, tmp_path, capsys):
    """--init-from B resumed the checkpoint of a run fine-tuning model A."""
    ck, out, other = str(tmp_path / "c.ckpt"), str(tmp_path / "m.npz"), str(tmp_path / "b.npz")
    arch = mlp((6, 8, 3), "sigmoid", "identity")
    save_model(other, arch, init_params(arch, "normal", rng=1))
    common = ["train", "--data-npz", files["train"], "--quiet", "--checkpoint", ck, "--out", out]
    assert main([*common, "--init-from", str(files["model"]), "--epochs", "1"]) == 0
    capsys.readouterr()
    before = open(ck, "rb").read()
    assert main([*common, "--init-from", other, "--epochs", "2"]) == 2
    line = _one_clean_line(capsys.readouterr().err)
    assert f"{ck}: checkpoint: was started from other parameters" in line
    assert f"--init-from {other}" in line and "delete or move" in line
    assert open(ck, "rb").read() == before
    assert main([*common, "--init-from", str(files["model"]), "--epochs", "2"]) == 0


def test_sensitivity_n_inputs_past_a_datasets_test_split_is_refused(files, monkeypatch, capsys):
    """--n-inputs past the test split's rows used the split's rows in silence."""
    import types
    import refnet.datasets
    X, y = np.load(files["data"])["X"], np.load(files["data"])["y"]
    split = types.SimpleNamespace(X=X, y=y)
    monkeypatch.setattr(refnet.datasets, "load_dataset", lambda name, part, **kw: split)
    assert main(["sensitivity", str(files["model"]), "--dataset", "mnist", "--n-inputs", "61",
                 "--mc-trials", "0"]) == 2
    assert _one_clean_line(capsys.readouterr().err).endswith(
        "--n-inputs 61: --dataset mnist (test split) has only 60 rows; give --n-inputs 60 or "
        "fewer")
    assert main(["sensitivity", str(files["model"]), "--dataset", "mnist", "--mc-trials", "0"]) == 0
    assert ", 60 inputs," in capsys.readouterr().out  # no --n-inputs: every row there is


@pytest.mark.parametrize("n", ["--n-val=0", "--n-train=1"])
def test_no_validation_part_is_allowed(files, tmp_path, n, capsys):
    out = tmp_path / "m.npz"
    assert main(["train", "--data-npz", files["train"], "--hidden", "4", "--epochs", "1",
                 "--quiet", n, "--out", str(out)]) == 0
    assert out.is_file()


def test_overflowing_learning_rate_is_one_line(files, tmp_path, capsys):
    assert main(["train", "--data-npz", files["train"], "--hidden", "4", "--epochs", "1",
                 "--quiet", "--lr", "1e308", "--out", str(tmp_path / "m.npz")]) == 1
    assert "became non-finite" in _one_clean_line(capsys.readouterr().err)


@pytest.mark.parametrize("template", [t for t, e in CASES["reproduce"] if "--envelope" in t
                                      or "--out {model}" in t or "given twice" in e])
def test_reproduce_refuses_envelope_and_out_before_computing(template, files, monkeypatch, capsys):
    import refnet.reproduction.registry
    monkeypatch.setattr(refnet.reproduction.registry, "figure_module",
                        lambda name: pytest.fail("computation started"))
    assert main([a.format(**files) for a in template.split()]) == 2
    _one_clean_line(capsys.readouterr().err)


@pytest.mark.parametrize("template", [t for t, _ in CASES["sweep"] if "{model}" in t
                                      or "{long}" in t])
def test_sweep_refuses_out_and_report_dir_before_any_work(template, files, monkeypatch, capsys):
    """--out and --report-dir were first used when the store was made (a traceback for a
    name too long) or when the report was written, after every cell had been computed."""
    import refnet.sweep
    import refnet.sweep.report
    monkeypatch.setattr(refnet.sweep, "run_sweep", lambda *a, **k: pytest.fail("sweep ran"))
    monkeypatch.setattr(refnet.sweep.report, "write_report",
                        lambda *a, **k: pytest.fail("report written"))
    assert main([a.format(**files) for a in template.split()]) == 2
    _one_clean_line(capsys.readouterr().err)


# --- a flag given twice: argparse kept the last value without a word ----------------------------
@pytest.mark.parametrize("template, prog, flag, words", [
    ("crosscheck make {model} -o {out}.npz --variances add_unc=0.1 --variances add_cor=0.2",
     "crosscheck make", "--variances", ("add_unc=0.1", "add_cor=0.2")),
    ("crosscheck make {model} -o {out}.npz --out {out}2.npz", "crosscheck make", "-o/--out",
     ("{out}.npz", "{out}2.npz")),
    ("sensitivity {model} --inputs {data} --spec add_unc=0.1 --spec=add_cor=0.2", "sensitivity",
     "--spec", ("add_unc=0.1", "add_cor=0.2")),          # the --flag=value form
    ("evaluate {model} --data {data} --levels 0.1 --lev 0.2", "evaluate", "--levels",
     ("0.1", "0.2")),                                    # an abbreviation is the same flag
    ("evaluate {model} --data {data} --variances 3 --variances=4", "evaluate", "--variances",
     ("3", "4")),
    ("evaluate {model} --data {data} --vmin 0.1 --vmin 0.2", "evaluate", "--vmin", ("0.1", "0.2")),
    ("train --data-npz {train} --epochs 1 --epochs 2", "train", "--epochs", ("1", "2")),
    ("train --data-npz {train} --noise-variance 0.5 --noise-variance -1", "train",
     "--noise-variance", ("0.5", "-1")),                 # a negative value glued to its flag
    ("sweep --out {out} --workers 1 --workers 2", "sweep", "--workers", ("1", "2")),
    ("reproduce --only a b --only c", "reproduce", "--only", ("a b", "c")),
    ("fetch --timeout 1 --timeout 2", "fetch", "--timeout", ("1", "2")),
    ("info {model} --naming fc --naming h", "info", "--naming", ("fc", "h")),
    ("info {model} --json --json", "info", "--json", ()),  # a switch: refused too, one rule
    ("--debug --debug info {model}", "", "--debug", ()),
])
def test_a_flag_given_twice_is_one_line_naming_it(template, prog, flag, words, files, capsys,
                                                  tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a command the check misses writes its default outputs here
    assert main([a.format(**files) for a in template.split()]) == 2
    line = _one_clean_line(capsys.readouterr().err)
    said = " (" + ", then ".join(repr(w.format(**files)) for w in words) + ")" if words else ""
    prog = f"refnet {prog}".rstrip()
    assert line == f"{prog}: error: {flag} given twice{said}; give it once (see `{prog} --help`)"


# --- a value repeated inside one flag, or a repeatable flag setting one thing twice: the last
# one silently won
@pytest.mark.parametrize("template, expected", [
    ("crosscheck make {model} -o {out}.npz --variances add_unc=0.1,add_unc=0.2",
     "--variances: add_unc given twice ('add_unc=0.1', then 'add_unc=0.2'); give each noise "
     "type once"),
    ("crosscheck make {model} -o {out}.npz --layer-variances 1:add_unc=0.1 "
     "--layer-variances 1:mul_unc=0.2",
     "--layer-variances: layer 1 given twice ('1:add_unc=0.1', then '1:mul_unc=0.2'); give "
     "each layer once"),
    ("crosscheck make {model} -o {out}.npz --layers 1,2 --layer-variances 2:add_unc=0.1 "
     "--layer-variances -1:add_unc=0.2",
     "--layers/--layer-variances: layer_specs: layers -1 and 2 are the same layer 2"),
    ("sensitivity {model} --inputs {data} --spec add_unc=0.1,add_cor=0,add_unc=0.2",
     "--spec: add_unc given twice ('add_unc=0.1', then 'add_unc=0.2')"),
    ("sweep --out {out} --set seed=1 --set seed=2",
     "--set: the key grid.seed given twice ('seed=1', then 'seed=2'); give each key once"),
    ("sweep --out {out} --set seed=1 --set grid.seed=2",
     "--set: the key grid.seed given twice ('seed=1', then 'grid.seed=2')"),
    ("evaluate {model} --data {data} --levels 0.1,0.2,1e-1",
     "argument --levels: 0.1 given twice ('0.1', then '1e-1'); give each variance once"),
])
def test_a_value_given_twice_is_one_line_naming_the_flag_and_the_key(template, expected, files,
                                                                     monkeypatch, capsys,
                                                                     tmp_path):
    import refnet.sweep
    monkeypatch.chdir(tmp_path)  # a command the check misses writes its default outputs here
    monkeypatch.setattr(refnet.sweep, "run_sweep", lambda *a, **k: pytest.fail("sweep ran"))
    assert main([a.format(**files) for a in template.split()]) == 2
    assert expected in _one_clean_line(capsys.readouterr().err)
    assert not os.path.exists(files["out"] + ".npz") and not os.path.exists(files["out"])


def test_repeatable_flags_still_collect_every_value(files):
    parser = build_parser()
    args = parser.parse_args(["sweep", "--out", "o", "--set", "seed=0", "--set=epochs=1"])
    assert args.overrides == ["seed=0", "epochs=1"]
    args = parser.parse_args(["train", "--regularizer", "eq4", "--regularizer", "eq7"])
    assert args.regularizer == ["eq4", "eq7"]
    args = parser.parse_args(["crosscheck", "make", files["model"], "-o", "b.npz",
                              "--layer-variances", "1:add_unc=0.1",
                              "--layer-variances", "2:add_unc=0.2"])
    assert args.layer_variances == ["1:add_unc=0.1", "2:add_unc=0.2"]
    # each parse starts afresh: the same parser takes the flag again
    assert parser.parse_args(["train", "--epochs", "3"]).epochs == 3
    assert parser.parse_args(["train", "--epochs", "4"]).epochs == 4


def _parsers(parser):
    """``parser`` and every sub-command parser below it."""
    yield parser
    for action in parser._actions:
        for sub in getattr(action, "choices", None) or ():
            if isinstance(action.choices, dict):
                yield from _parsers(action.choices[sub])


def test_the_help_marks_every_repeatable_flag():
    """The help says: a flag may be given once unless its help says "repeatable"."""
    from refnet.cli import _REPEATABLE

    parser = build_parser()
    assert "repeatable" in parser.format_help()
    collecting = [a for p in _parsers(parser) for a in p._actions if isinstance(a, _REPEATABLE)]
    assert len(collecting) >= 3  # sweep --set, train --regularizer, crosscheck --layer-variances
    for action in collecting:
        assert "repeatable" in action.help, action.option_strings
