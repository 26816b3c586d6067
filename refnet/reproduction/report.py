"""The reproduction report: every printed number of the papers next to refnet's, and every figure.

A :class:`Check` pairs a number printed in a paper with the number refnet computed in this run,
with a tolerance and the likely reason for a difference. A :class:`FigureEntry` pairs refnet's
picture with the paper's description of its own figure. :func:`write_report` renders both as
``report.md`` and ``report.html`` (self-contained apart from the PNGs beside it).
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..io import atomic_write_bytes

__all__ = ["Check", "FigureEntry", "VERDICTS", "verdict_summary", "write_report",
           "render_markdown", "render_html", "format_value"]


#: The verdicts, in the order the summary line counts them.
VERDICTS = ("agrees", "differs (refnet)", "paper inconsistent", "outside the envelope",
            "not computed")


@dataclass(frozen=True)
class Check:
    """One printed number: the paper's value, refnet's, and what their difference means.

    ``tolerance`` is absolute, in ``unit``. Verdicts (:attr:`verdict`), first match wins:

    * ``"not computed"``: ``refnet`` is NaN (not computed in this run);
    * ``"agrees"``: ``|refnet - paper| <= tolerance``;
    * ``"paper inconsistent"``: ``inconsistent`` holds the arithmetic by which the paper's own
      statements contradict this number (refnet follows the statement it names);
    * ``"outside the envelope"``: ``envelope = (lo, hi)`` is the range refnet measured over the
      settings the paper did not record, and the paper's value lies outside
      ``[lo - tolerance, hi + tolerance]``: no setting tried reaches it;
    * ``"differs (refnet)"``: anything else: refnet's own number misses.

    ``reason`` says why refnet may differ (settings the authors never recorded, a smaller
    preset, ...); ``envelope_key`` names the envelope quantity (``"<dataset>/<quantity>"``)
    and ``envelope_cells`` lists the cells behind the range. ``chosen`` names a setting the
    preset chose by its outcome that moves this number (``Preset.chosen_by_outcome``): it
    does not change the verdict, but the explanation states it whatever the verdict, since an
    agreement reached by choosing a setting is weaker evidence than one reached without.
    """

    source: str        #: where the paper prints it, e.g. "Duque 2024, Sec. 4"
    quantity: str      #: what it is, e.g. "MNIST, standard training, clean accuracy"
    paper: float
    refnet: float
    tolerance: float
    unit: str = "%"
    reason: str = ""
    inconsistent: str = ""
    envelope: tuple | None = None
    envelope_key: str = ""
    envelope_cells: str = ""
    chosen: str = ""

    @property
    def difference(self) -> float:
        return self.refnet - self.paper

    @property
    def verdict(self) -> str:
        if not math.isfinite(self.refnet):
            return "not computed"
        if abs(self.difference) <= self.tolerance:
            return "agrees"
        if self.inconsistent:
            return "paper inconsistent"
        if self.envelope is not None and not (
                self.envelope[0] - self.tolerance <= self.paper <= self.envelope[1] + self.tolerance):
            return "outside the envelope"
        return "differs (refnet)"

    @property
    def explanation(self) -> str:
        """What the report prints beside the verdict: the arithmetic, the range or the reason."""
        v = self.verdict
        chosen = f"Setting chosen by outcome: {self.chosen} (see the header)." if self.chosen else ""
        if v == "agrees":
            return chosen
        if v == "paper inconsistent":
            return f"{self.inconsistent} {chosen}".strip()
        if self.envelope is not None:
            lo, hi = (format_value(x, self.unit) for x in self.envelope)
            where = "outside" if v == "outside the envelope" else "inside"
            rng = (f"measured envelope [{lo}, {hi}] {self.unit}; the paper's "
                   f"{format_value(self.paper, self.unit)} lies {where} it "
                   f"(+- {format_value(self.tolerance, self.unit)})")
            cells = f" (cells: {self.envelope_cells})" if self.envelope_cells else ""
            return f"{rng}{cells}. {self.reason} {chosen}".strip()
        return f"{self.reason} {chosen}".strip()


def verdict_summary(checks) -> str:
    """One line counting each verdict, e.g. "21 of 22 agree; 1 paper inconsistent"."""
    counts = {v: sum(c.verdict == v for c in checks) for v in VERDICTS}
    head = f"{counts['agrees']} of {len(checks)} agree"
    rest = [f"{n} {v}" for v, n in counts.items() if v != "agrees" and n]
    return head + ("; " + ", ".join(rest) if rest else "") + "."


@dataclass(frozen=True)
class FigureEntry:
    """One of the papers' figures as refnet draws it."""

    figure: str          #: e.g. "Duque 2024, Fig. 4a"
    image: str           #: PNG path relative to the report
    paper_says: str      #: the paper's description (caption and text)
    refnet_says: str = ""  #: what refnet's picture shows, and how it differs
    settings: dict = field(default_factory=dict)


def format_value(x: float, unit: str) -> str:
    """A number as the report prints it: 2 decimals for % and pp, 4 significant digits else."""
    if not math.isfinite(x):
        return "n/a"
    return f"{x:.2f}" if unit in ("%", "pp") else f"{x:.4g}"


def render_markdown(title: str, checks, figures, header: dict) -> str:
    lines = [f"# {title}", ""]
    for k, v in header.items():
        lines.append(f"- **{k}**: {v}")
    lines += ["", "## Numbers printed in the papers", "",
              f"**Summary:** {verdict_summary(checks)} Verdicts: *agrees* (within the tolerance), "
              "*differs (refnet)* (refnet misses), *paper inconsistent* (the paper contradicts "
              "itself; the arithmetic is given), *outside the envelope* (no setting the paper "
              "left unrecorded, within the ranges refnet measured, reaches the printed value; "
              "the range is given).", "",
              "| source | quantity | paper | refnet | difference | tolerance | verdict | why |",
              "|---|---|---:|---:|---:|---:|---|---|"]
    for c in checks:
        lines.append(f"| {c.source} | {c.quantity} | {format_value(c.paper, c.unit)} {c.unit} | "
                     f"{format_value(c.refnet, c.unit)} {c.unit} | {format_value(c.difference, c.unit)} | "
                     f"{format_value(c.tolerance, c.unit)} | {c.verdict} | {c.explanation} |")
    lines += ["", "## Figures", ""]
    for f in figures:
        lines += [f"### {f.figure}", "", f"![{f.figure}]({f.image})", "",
                  f"**Paper:** {f.paper_says}", ""]
        if f.refnet_says:
            lines += [f"**refnet:** {f.refnet_says}", ""]
        if f.settings:
            lines += ["Settings: " + ", ".join(f"{k} = {v}" for k, v in f.settings.items()), ""]
    return "\n".join(lines) + "\n"


def render_html(title: str, checks, figures, header: dict) -> str:
    e = html.escape
    rows = "".join(
        f"<tr class='{c.verdict.split()[0]}'><td>{e(c.source)}</td><td>{e(c.quantity)}</td>"
        f"<td>{format_value(c.paper, c.unit)} {e(c.unit)}</td><td>{format_value(c.refnet, c.unit)} {e(c.unit)}</td>"
        f"<td>{format_value(c.difference, c.unit)}</td><td>{format_value(c.tolerance, c.unit)}</td>"
        f"<td>{e(c.verdict)}</td><td>{e(c.explanation)}</td></tr>"
        for c in checks)
    figs = "".join(
        f"<section><h3>{e(f.figure)}</h3><div class='pair'><img src='{e(f.image)}' alt='{e(f.figure)}'>"
        f"<div><p><b>Paper:</b> {e(f.paper_says)}</p>"
        + (f"<p><b>refnet:</b> {e(f.refnet_says)}</p>" if f.refnet_says else "")
        + (f"<p class='small'>Settings: {e(', '.join(f'{k} = {v}' for k, v in f.settings.items()))}</p>"
           if f.settings else "")
        + "</div></div></section>" for f in figures)
    head = "".join(f"<li><b>{e(k)}</b>: {e(str(v))}</li>" for k, v in header.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 6px;font-size:90%}}
tr.agrees td:nth-child(7){{color:#070}}tr.differs td:nth-child(7){{color:#b00}}
tr.paper td:nth-child(7),tr.outside td:nth-child(7){{color:#850}}
.pair{{display:flex;gap:1em;align-items:flex-start}}.pair img{{max-width:62%}}.small{{font-size:85%}}
</style></head><body><h1>{e(title)}</h1><ul>{head}</ul>
<h2>Numbers printed in the papers</h2><p><b>Summary:</b> {e(verdict_summary(checks))}</p><table><tr><th>source</th><th>quantity</th><th>paper</th>
<th>refnet</th><th>difference</th><th>tolerance</th><th>verdict</th><th>why</th></tr>{rows}</table>
<h2>Figures</h2>{figs}</body></html>
"""


def write_report(out_dir, checks, figures, header: dict, title: str = "refnet reproduction report"):
    """Write ``report.md`` and ``report.html`` into ``out_dir``; returns both paths."""
    out = Path(out_dir)
    md = atomic_write_bytes(out / "report.md", render_markdown(title, checks, figures, header).encode())
    ht = atomic_write_bytes(out / "report.html", render_html(title, checks, figures, header).encode())
    return md, ht
