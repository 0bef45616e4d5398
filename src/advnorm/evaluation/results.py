"""The results of a comparison: one evaluated training per (cell, seed), and the rows of the tables made from them.

A *cell* is one model of Table 1 (a method, and for ``single`` its training domain); a comparison
trains each cell once per seed. Rows are averaged over seeds, with their standard deviation; the
per-seed rows and the per-case scores stay available for the paired statistics.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from advnorm.evaluation.statistics import mean_sd
from advnorm.labels import TISSUES
from advnorm.methods import METHOD_SPECS


def num(value: Any) -> float:
    """A metric read back from JSON: ``null`` (an undefined metric, written for NaN) is ``nan``."""
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class Cell:
    """One evaluated training: which model (``name``, ``method``, ``train_domain``), which seed, and its results."""

    name: str
    method: str
    seed: int
    evaluation: dict[str, Any]
    train_domain: str | None = None
    """The one training domain of a ``single`` model (None: all domains)."""
    held_out: str | None = None
    """The domain left out of training (leave-one-domain-out cells; None: none)."""
    summary: dict[str, Any] = field(default_factory=dict)
    """The training's summary.json (budget, final validation metrics)."""

    @property
    def multi_domain(self) -> bool:
        return self.train_domain is None


def experiment_of(cell: Cell, domains: list[str], test: str) -> tuple[str, str, str]:
    """(experiment number, method title, training domains) of a cell's row for test domain ``test``;
    with two domains, single-domain models are numbered as the paper's Exp. 1-4."""
    spec = METHOD_SPECS[cell.method]
    if cell.train_domain is None:
        trained_on = [d for d in domains if d != cell.held_out]
        return spec.experiment, spec.title, " + ".join(trained_on)
    same = cell.train_domain == test
    if len(domains) == 2:
        i = domains.index(cell.train_domain)
        exp = str(i + 1) if same else str(i + 3)
    else:
        exp = "1-2" if same else "3-4"
    return exp, spec.title + ("" if same else ", cross-testing"), cell.train_domain


def classes_of(cells: list[Cell]) -> tuple[str, ...]:
    """The foreground classes the cells were scored on (CSF, GM, WM for the paper's), in their order."""
    for cell in cells:
        for per in cell.evaluation["summary"]["per_domain"].values():
            return tuple(k for k in per["dice"] if k != "mean")
    return TISSUES


def per_seed_rows(cells: list[Cell], domains: list[str]) -> list[dict[str, Any]]:
    """One row per cell, seed and test domain: Dice per class (mean over the domain's test subjects) and their mean."""
    classes = classes_of(cells)
    rows = []
    for cell in cells:
        per_domain = cell.evaluation["summary"]["per_domain"]
        for test in domains:
            if test not in per_domain:
                continue
            dice = per_domain[test]["dice"]
            exp, title, train = experiment_of(cell, domains, test)
            row: dict[str, Any] = {
                "experiment": exp,
                "method": title,
                "method_id": cell.method,
                "train": train,
                "test": test,
                "seed": cell.seed,
            }
            row.update({t: num(dice.get(t, {}).get("mean")) for t in classes})
            vals = [row[t] for t in classes if math.isfinite(row[t])]
            row["mean"] = float(np.mean(vals)) if vals else math.nan
            rows.append(row)
    return sorted(rows, key=lambda r: (r["experiment"], r["train"], r["test"], r["seed"]))


def averaged_rows(seed_rows: list[dict[str, Any]], classes: tuple[str, ...] = TISSUES) -> list[dict[str, Any]]:
    """Rows averaged over seeds, with the sample standard deviation of each score (``<score>_sd``) and the seeds."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in seed_rows:
        groups[(r["experiment"], r["method"], r["method_id"], r["train"], r["test"])].append(r)
    out = []
    for (exp, title, method_id, train, test), rows in groups.items():
        row: dict[str, Any] = {"experiment": exp, "method": title, "method_id": method_id, "train": train, "test": test}
        for score in (*classes, "mean"):
            row[score], row[f"{score}_sd"] = mean_sd([r[score] for r in rows])
        row["seeds"] = len(rows)
        out.append(row)
    return sorted(out, key=lambda r: (r["experiment"], r["train"], r["test"]))


def unseen_seed_rows(cells: list[Cell], domains: list[str]) -> list[dict[str, Any]]:
    """The per-seed rows of leave-one-domain-out cells on the domain each left out (table3.csv per seed)."""
    left_out = [c for c in cells if c.held_out is not None]
    held = {(c.method, c.seed, " + ".join(d for d in domains if d != c.held_out)): c.held_out for c in left_out}
    rows = per_seed_rows(left_out, domains)
    return [r for r in rows if held.get((r["method_id"], r["seed"], r["train"])) == r["test"]]


def case_scores(cells: list[Cell], method: str, *, unseen: bool = False) -> dict[tuple[int, str, str], float]:
    """``(seed, domain, case) -> mean Dice over the tissues`` for every test case of ``method``'s multi-domain cells;
    ``unseen``: of its leave-one-domain-out cells, on the domain each left out (keys pair with the in-domain ones)."""
    out = {}
    for cell in cells:
        if cell.method != method or not cell.multi_domain or (cell.held_out is not None) != unseen:
            continue
        for case in cell.evaluation["cases"]:
            if unseen and case["domain"] != cell.held_out:
                continue
            vals = [v for t in case["dice"] if math.isfinite(v := num(case["dice"][t]))]
            out[(cell.seed, case["domain"], case["case"])] = float(np.mean(vals)) if vals else math.nan
    return out


def jsd_rows(cells: list[Cell]) -> list[dict[str, Any]]:
    """Table 2: the JSD between domains of the inputs and of what each multi-domain method feeds S, mean over seeds."""
    groups: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for cell in cells:
        jsd = cell.evaluation["summary"].get("jsd")
        if not jsd or not cell.multi_domain or cell.held_out is not None or cell.method == "augmented":
            continue
        for tissue in ("all", *(k for k in jsd["input"] if k != "all")):
            groups[(cell.method, tissue)].append((num(jsd["input"].get(tissue)), num(jsd["normalized"].get(tissue))))
    rows = []
    for (method, tissue), pairs in groups.items():
        row: dict[str, Any] = {"method": method, "tissue": tissue}
        row["jsd_input"], _ = mean_sd([p[0] for p in pairs])
        row["jsd_normalized"], row["jsd_normalized_sd"] = mean_sd([p[1] for p in pairs])
        rows.append(row)
    return rows


def overlap_rows(cells: list[Cell]) -> list[dict[str, Any]]:
    """Tissue overlap within each test domain (``tissue_overlap`` of the evaluations), mean over seeds: one row for
    the inputs per domain (method ``input``), then one per multi-domain method and domain for what it feeds S."""
    groups: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    for cell in cells:
        overlap = cell.evaluation["summary"].get("tissue_overlap")
        if not overlap or not cell.multi_domain or cell.held_out is not None:
            continue
        for domain, pairs in overlap["input"].items():
            groups[("input", domain)].append(pairs)
        for domain, pairs in overlap["normalized"].items():
            groups[(cell.method, domain)].append(pairs)
    rows = []
    for (method, domain), found in groups.items():
        row: dict[str, Any] = {"method": method, "domain": domain}
        for pair in found[0]:
            row[pair], _ = mean_sd([num(p.get(pair)) for p in found])
        rows.append(row)
    return sorted(rows, key=lambda r: (r["domain"], r["method"] != "input", r["method"]))


def dead_pairs(seed_rows: list[dict[str, Any]], below: float = 0.5, classes: tuple[str, ...] = TISSUES) -> list[str]:
    """Multi-domain (method, seed, test domain, tissue) whose Dice is under ``below``: the "dead class" check."""
    out = []
    for r in seed_rows:
        if r["method_id"] == "single":
            continue
        out += [f"{r['method_id']} seed {r['seed']} {r['test']} {t} {r[t]:.3f}" for t in classes if not r[t] >= below]
    return out
