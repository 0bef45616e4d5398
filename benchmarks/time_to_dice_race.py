"""The race of ``bench_time_to_dice``: one system's training clock, scoring schedule and Dice curve."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from _common import log


@dataclass
class Race:
    """Training time (wall clock minus scoring), patches used and the Dice curve of one run."""

    tests: list  # advnorm.data.subject.Subject, labelled
    classes: tuple[str, ...]
    budget_s: float
    every_s: float
    train_s: float = 0.0
    scoring_s: float = 0.0
    patches: int = 0
    next_score_s: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    curve: list[dict] = field(default_factory=list)
    state: dict[str, float] = field(default_factory=dict)
    """What the system reports of its training at the last boundary (advnorm: its learning rates and validation
    loss), copied into each scoring, so a stall can be told from a learning rate cut to nothing."""

    def timed(self, phase: str, fn: Callable[[], object]) -> object:
        """Run ``fn`` on the training clock, booked under ``phase``."""
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
        self.train_s += dt
        self.phases[phase] = self.phases.get(phase, 0.0) + dt
        return out

    def over(self) -> bool:
        return self.train_s >= self.budget_s

    def due(self) -> bool:
        return self.train_s >= self.next_score_s or self.over()

    def score(self, segment: Callable[[object], np.ndarray]) -> None:
        """Full-volume metrics of every test subject with the current weights; the clock is stopped meanwhile."""
        from advnorm.evaluation.metrics import case_metrics

        t = time.perf_counter()
        subjects = {}
        for s in self.tests:
            m = case_metrics(segment(s), s.require_label(), s.spacing, names=self.classes)
            subjects[f"{s.domain}/{s.case_id}"] = {
                "dice": m["dice"],
                "mean_dice": float(np.mean(list(m["dice"].values()))),
                "hd95": m["hd95"],
            }
        self.curve.append(
            {
                "train_seconds": self.train_s,
                "patches": self.patches,
                "mean_dice": float(np.mean([v["mean_dice"] for v in subjects.values()])),
                "subjects": subjects,
                **dict(self.state),
            }
        )
        self.scoring_s += time.perf_counter() - t
        self.next_score_s = (math.floor(self.train_s / self.every_s) + 1) * self.every_s
        log(
            f"  {self.train_s:6.1f} s, {self.patches:6d} patches: mean Dice {self.curve[-1]['mean_dice']:.3f}",
            err=True,
        )

    def run(self, set_up: Callable[[], None], advance: Callable[[Race], None], segment) -> dict:
        """Set up, score the untrained model, then advance and score on schedule until the budget is spent."""
        self.timed("set_up", set_up)
        self.score(segment)
        while not self.over():
            advance(self)
            if self.due():
                self.score(segment)
        return {
            "train_seconds": self.train_s,
            "scoring_seconds": self.scoring_s,
            "patches": self.patches,
            "phases": self.phases,
            "patches_per_training_second": self.patches / max(self.train_s - self.phases.get("set_up", 0.0), 1e-9),
            "curve": self.curve,
        }
