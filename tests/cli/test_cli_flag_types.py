"""Every flag's value parser against hostile text: each ``type=`` of every (sub)command either
returns a value or raises what argparse turns into one usage line (``ArgumentTypeError``,
``ValueError``, ``TypeError``). Anything else escapes argparse as a traceback: a 3000-character
path made ``Path.is_file`` raise ``OSError: File name too long`` (found by fuzzing the command
line)."""
import argparse

import pytest

from refnet.cli import build_parser

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
