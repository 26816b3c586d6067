"""Every numbered equation of both papers appears in a module index table, with a function that
exists and tests that exist (Semenova 2022, Eqs. 1-29; Duque 2024, Eqs. 1-7).

Index tables are the ``Eq. -> function -> test`` tables opening each propagation module. Duque
Eqs. 4 and 7 are training penalties indexed as ``refnet.regularizers`` entries (that module is
written elsewhere; this test checks only that the index names it).
"""
import importlib
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
ROW = re.compile(r"^(?:Semenova 2022, Eq\. )?(\d+)\s+(?::func:`(\w+)`|``(refnet\.regularizers)``)(.*)$")
MODULES = {"semenova": ["refnet.propagation.semenova", "refnet.propagation.taylor",
                        "refnet.propagation.trained"],
           "duque": ["refnet.propagation.duque"]}
EQUATIONS = {"semenova": range(1, 30), "duque": range(1, 8)}


def index_rows(module_name):
    """{eq: [(function name or 'refnet.regularizers', [test names])]} from a module docstring."""
    mod = importlib.import_module(module_name)
    rows, last = {}, None
    for line in (mod.__doc__ or "").splitlines():
        m = ROW.match(line)
        if m:
            eq, func, reg, rest = int(m.group(1)), m.group(2), m.group(3), m.group(4)
            last = (func or reg, re.findall(r"\btest_\w+", rest))
            rows.setdefault(eq, []).append(last)
        elif last is not None and line.startswith(" ") and "test_" in line:
            last[1].extend(re.findall(r"\btest_\w+", line))
        else:
            last = None
    return mod, rows


def defined_tests():
    names = set()
    for path in TESTS.glob("test_*.py"):
        names.update(re.findall(r"^def (test_\w+)", path.read_text(), flags=re.M))
    return names


@pytest.mark.parametrize("paper", ["semenova", "duque"])
def test_every_equation_is_indexed(paper):
    tests = defined_tests()
    seen = {}
    for module_name in MODULES[paper]:
        mod, rows = index_rows(module_name)
        for eq, entries in rows.items():
            for func, test_names in entries:
                if func == "refnet.regularizers":
                    continue
                assert hasattr(mod, func), f"{module_name}: index names missing function {func}"
                assert test_names, f"{module_name}: Eq. {eq} ({func}) lists no test"
                missing = [t for t in test_names if t not in tests]
                assert not missing, f"{module_name}: Eq. {eq} lists undefined tests {missing}"
            seen.setdefault(eq, []).extend(module_name for _ in entries)
    missing_eqs = [eq for eq in EQUATIONS[paper] if eq not in seen]
    assert not missing_eqs, f"{paper}: equations without an index entry: {missing_eqs}"


def test_duque_regularizer_equations_point_to_regularizers():
    _, rows = index_rows("refnet.propagation.duque")
    for eq in (4, 7):
        assert [f for f, _ in rows[eq]] == ["refnet.regularizers"]


def test_indexed_functions_cite_their_equation():
    for paper, modules in MODULES.items():
        cite = "Semenova 2022" if paper == "semenova" else "Duque 2024"
        for module_name in modules:
            mod, rows = index_rows(module_name)
            for eq, entries in rows.items():
                for func, _ in entries:
                    if func == "refnet.regularizers":
                        continue
                    doc = getattr(mod, func).__doc__ or ""
                    assert re.search(rf"\({cite}, Eqs?\. [^)]*\b{eq}\b", doc), \
                        f"{module_name}.{func} does not cite ({cite}, Eq. {eq}, ...)"
