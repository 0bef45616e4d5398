"""Domain-balanced batches over a patch index, resumable and shardable across processes."""

from __future__ import annotations

import numpy as np


class DomainBalancedSampler:
    """Yields batches of patch rows with (as nearly as possible) equal counts per domain.

    Each domain's rows are reshuffled whenever they run out, so small domains are
    revisited more often than large ones (the paper's batches mixed domains at random).
    The stream is a pure function of ``(seed, epoch)``: resuming at a given epoch and
    step reproduces the batches of an uninterrupted run. With ``world_size > 1`` every
    process draws the same global batch and keeps its own ``rank``-th share.
    """

    def __init__(
        self, row_domains: np.ndarray, batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        if batch_size % world_size:
            raise ValueError("the global batch size must be divisible by the number of processes")
        self.row_domains = np.asarray(row_domains)
        self.domains = np.unique(self.row_domains)
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.rows_by_domain = [np.flatnonzero(self.row_domains == d) for d in self.domains]

    def epoch(self, epoch: int, steps: int, start: int = 0):
        """The batches ``start..steps-1`` of ``epoch`` (a generator of int64 row arrays)."""
        rng = np.random.default_rng([self.seed, epoch])
        queues = [rng.permutation(r) for r in self.rows_by_domain]
        cursors = [0] * len(queues)
        k = len(queues)
        for step in range(steps):
            counts = [self.batch_size // k + (1 if (i - step) % k < self.batch_size % k else 0) for i in range(k)]
            parts = []
            for i, count in enumerate(counts):
                take, missing = [], count
                while missing > 0:
                    if cursors[i] >= len(queues[i]):
                        queues[i], cursors[i] = rng.permutation(self.rows_by_domain[i]), 0
                    got = queues[i][cursors[i] : cursors[i] + missing]
                    cursors[i] += len(got)
                    missing -= len(got)
                    take.append(got)
                if take:  # more domains than patches in a batch: this one's turn comes in another step
                    parts.append(np.concatenate(take))
            batch = np.concatenate(parts)
            batch = batch[rng.permutation(len(batch))]
            if step >= start:
                yield batch[self.rank :: self.world_size]

    def full_pass_steps(self) -> int:
        """Batches in one pass over every row once (the paper's epoch)."""
        return int(np.ceil(len(self.row_domains) / self.batch_size))
