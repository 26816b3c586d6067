"""Every flag's value parser against hostile text: each ``type=`` of every (sub)command either
returns a value or raises what argparse turns into one usage line (``ArgumentTypeError``,
``ValueError``, ``TypeError``). Anything else escapes argparse as a traceback: a 3000-character
path made ``Path.is_file`` raise ``OSError: File name too long`` (found by fuzzing the command
line)."""
import argparse
import errno
import os
import re

import pytest

from refnet.cli import build_parser, main
from refnet.paths import SHOWN_PATH_CHARS, short_path

#: Text a user (or a script with a bug) may pass: empty, signs, non-finite and huge numbers,
#: separators alone, a path too long for the file system, names under pseudo-file systems,
#: control and non-ASCII characters.
HOSTILE = ["", " ", "-", "--", "-1", "0", "1e-400", "1e400", "-1e400", "nan", "-nan", "inf",
           "-inf", "1_000", "0x10", "1e", "9" * 5000, "-" + "9" * 400, "1" * 19 + "0" * 2,
           ",", ",,", "1,,2", "1,-1", "=", "add_unc=", "=0.1", "a=b=c", "1:", ":add_unc=1",
           "x" * 3000, "/" + "x" * 300, ("d/" * 2100) + "f.npz", "/proc/self/mem", "/dev/null",
           "/", ".", "..", "\x00", "a\x00b", "\n", "é", "💥", "NUL", "~", "$HOME"]


def _parsers(parser, name="refnet"):
    """(command name, parser) of the top level and every subcommand, depth first."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, p in action.choices.items():
                yield from _parsers(p, f"{name} {sub}")


def _typed_flags():
    out = []
    for name, p in _parsers(build_parser()):
        for action in p._actions:
            if callable(action.type) and action.type not in (str,):
                flag = action.option_strings[-1] if action.option_strings else action.dest
                out.append(pytest.param(action.type, id=f"{name} {flag}"))
    return out


TYPED = _typed_flags()


def test_the_walk_finds_the_flags_it_should():
    ids = {p.id for p in TYPED}
    assert len(ids) > 40
    assert {"refnet train --epochs", "refnet info model", "refnet crosscheck stat --alpha",
            "refnet evaluate --data"} <= ids


@pytest.mark.parametrize("parse", TYPED)
def test_every_flag_type_refuses_hostile_text_cleanly(parse, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)        # relative names resolve in an empty folder
    for text in HOSTILE:
        try:
            parse(text)
        except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
            assert "\n" not in str(e).strip() or text == "\n", (text[:40], str(e)[:200])


# --- a path too long for the file system, where it is first used, not parsed ----------------
TOO_LONG = f"cannot be used ({os.strerror(errno.ENAMETOOLONG)})"  # as the messages say it


@pytest.mark.parametrize("template", [
    "reproduce --preset full --only semenova_fig6 --envelope {long} --out {tmp}/o",
    "sweep {long} --out {tmp}/o",                          # the spec file
    "sweep --out {long} --report-dir {tmp}/rep",           # reporting only: --out is read
])
def test_a_path_too_long_is_one_line_showing_it_shortened(template, tmp_path, capsys,
                                                          monkeypatch):
    """These printed the raw OSError: one line, but holding all 3000 characters."""
    import refnet.reproduction.registry
    monkeypatch.setattr(refnet.reproduction.registry, "figure_module",
                        lambda name: pytest.fail("computation started"))
    long = str(tmp_path / ("x" * 3000))
    assert main(template.format(long=long, tmp=tmp_path).split()) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert TOO_LONG in err and "x" * (SHOWN_PATH_CHARS // 2 + 1) not in err, err[:300]
    assert short_path(long)[:40] in err


def test_the_sweep_loaders_refuse_a_path_too_long_with_their_own_error(tmp_path):
    from refnet.errors import RefnetError
    from refnet.sweep import load_spec
    from refnet.sweep.store import SweepStore

    long = tmp_path / ("x" * 3000)
    for load in (load_spec, SweepStore.open):
        with pytest.raises(RefnetError, match=re.escape(TOO_LONG)) as e:
            load(long)
        assert "x" * (SHOWN_PATH_CHARS // 2 + 1) not in str(e.value)


# --- an empty value: the commands read `args.x or default`, so '' silently meant the default ---
def _valued_options():
    out = []
    for name, p in _parsers(build_parser()):
        for action in p._actions:
            if action.option_strings and action.nargs != 0 and action.dest != "help":
                flag = action.option_strings[-1]
                out.append(pytest.param(name.split()[1:], flag, "/".join(action.option_strings),
                                        id=f"{name} {flag}"))
    return out


@pytest.mark.parametrize("command, flag, shown", _valued_options())
def test_every_flag_refuses_an_empty_value(command, flag, shown, capsys):
    """``train --activation ''`` trained sigmoid, ``sweep --halving ''`` ran without halving,
    ``fetch --cache-dir ''`` used $REFNET_DATA_DIR, ``info ''`` said "is a folder": each
    without a word. The flag is refused before anything else is looked at."""
    assert main([*command, flag, ""]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"argument {shown}: an empty value" in err, err


@pytest.mark.parametrize("argv, name", [(["info", ""], "model"), (["fetch", "mnist", ""], "DATASET"),
                                        (["crosscheck", ""], "MODE"), ([""], "COMMAND")])
def test_an_empty_positional_is_refused(argv, name, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"argument {name}: an empty value; give one" in err, err
