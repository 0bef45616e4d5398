"""The unseen-site part of the report (``reproduce --unseen``): table3.csv and its section of report.md.

Each multi-domain method is trained once per domain without that domain and tested on it, on the same
test subjects as in Table 1, so its score there pairs with its own in-domain score (trained with the
domain) and with every other method's unseen score, subject by subject and seed by seed.
"""

from __future__ import annotations

from pathlib import Path

from advnorm.evaluation.results import Cell, averaged_rows, case_scores, unseen_seed_rows
from advnorm.evaluation.statistics import paired_difference
from advnorm.evaluation.tables import markdown_table, per_seed_columns, table1_columns, with_sd, write_csv

UNSEEN_GAP = 0.05
"""The target: on a site it never saw, a method scores within this much mean Dice of its in-domain score."""


ONE_DOMAIN_LEFT = (
    "",
    "With two domains, each left-out run trains on one domain: an adversary (D's domain classes, the confusion "
    "term) has no second domain to align it with, so the methods differ here only by their input transform, "
    "G's form and augmentation. Three or more domains test the adversary on a site it never saw.",
)
"""Said in the report when K = 2: what a leave-one-domain-out run can and cannot show there."""


def write_unseen(
    out: Path, cells: list[Cell], domains: list[str], classes: tuple[str, ...], focus: tuple[str, ...]
) -> list[str]:
    """Write table3.csv (and its per-seed rows) and return the report's section; nothing without left-out cells."""
    seed_rows = unseen_seed_rows(cells, domains)
    if not seed_rows:
        return []
    rows = averaged_rows(seed_rows, classes)
    write_csv(rows, table1_columns(classes), out / "table3.csv")
    write_csv(seed_rows, per_seed_columns(classes), out / "table3_per_seed.csv")
    shown = with_sd(sorted(rows, key=lambda r: (r["test"], -r["mean"])), classes)
    lines = [
        "## Table 3: a site never seen (leave-one-domain-out)",
        "",
        "Each multi-domain method trained on every domain but one and tested on the one left out (the same test "
        "subjects as Table 1); mean ± sd over seeds. Per-seed rows in `table3_per_seed.csv`.",
        *(ONE_DOMAIN_LEFT if len(domains) == 2 else ()),
        "",
        markdown_table(shown, ["method", "train", "test", *classes, "mean"]),
        "",
        "### Unseen against in-domain, and against the other methods",
        "",
        f"Mean Dice per test subject, paired by seed and subject; 95% t-interval. Target: within {UNSEEN_GAP} of "
        "the method's own in-domain score, and above every other method's unseen score.",
    ]
    methods = sorted({c.method for c in cells if c.held_out is not None})
    for a in [m for m in focus if m in methods] or methods:
        unseen_a = case_scores(cells, a, unseen=True)
        gap = paired_difference(unseen_a, case_scores(cells, a))
        if gap.n:
            met = "met" if gap.mean >= -UNSEEN_GAP else "missed"
            lines.append(f"- {gap.words(f'{a} unseen', f'{a} in-domain')}; the {UNSEEN_GAP} target is {met}.")
        for b in methods:
            if b != a:
                diff = paired_difference(unseen_a, case_scores(cells, b, unseen=True))
                lines.append(f"- {diff.words(f'{a} unseen', f'{b} unseen')}.")
    return lines
