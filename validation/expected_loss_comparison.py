"""The no-lambda expected-loss objective vs noise-aware training vs Eq. 7 (issue #14, item 2).

Models:   per dataset (MNIST, Fashion-MNIST) one baseline (Duque 2024's protocol, few epochs),
          fine-tuned from it with (a) the expected-loss objective at the evaluation variance,
          (b) noise-aware training at that variance, (c) Eq. 7 at the authors' settings.
Noise:    additive uncorrelated, after both hidden sigmoids, variances log-spaced in [1e-3, 1].
Writes:   <out>/results/expected_loss_<dataset>.npz, <out>/figures/expected_loss.png,
          <out>/report.md (every number computed here).

Code: refnet/reproduction/duque/expected_loss.py.

    python validation/expected_loss_comparison.py [--out DIR] [--models DIR] [--variance 0.5]
"""
import argparse
import sys
from dataclasses import fields
from pathlib import Path

from refnet.io import atomic_write_bytes
from refnet.reproduction.duque import expected_loss as cmp


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("validation/reports/expected_loss"))
    ap.add_argument("--models", type=Path, default=Path("runs/expected_loss/models"),
                    help="where the trained models are cached (not committed)")
    defaults = cmp.ComparisonSettings()
    for f in fields(cmp.ComparisonSettings):
        if f.name != "datasets":
            ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(defaults, f.name))
                            if getattr(defaults, f.name) is not None else int,
                            default=getattr(defaults, f.name))
    ap.add_argument("--datasets", nargs="+", default=list(defaults.datasets))
    args = ap.parse_args(argv)
    settings = cmp.ComparisonSettings(**{f.name: (tuple(args.datasets) if f.name == "datasets"
                                                  else getattr(args, f.name))
                                         for f in fields(cmp.ComparisonSettings)})
    cmp.compute(settings, args.out, args.models)
    print(cmp.plot(settings, args.out))
    text = cmp.report_markdown(settings, args.out)
    atomic_write_bytes(args.out / "report.md", text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
