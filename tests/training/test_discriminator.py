"""The discriminator can learn the domains at all (issue 11): D alone, on real patches of the phantom's
domains, tells held-out subjects' domains apart (K-way accuracy over the domain logits only) within seconds."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from advnorm.config_file import resolve
from advnorm.data.layouts import open_domains
from advnorm.data.sampler import DomainBalancedSampler
from advnorm.methods import METHOD_SPECS
from advnorm.models.builders import build_discriminator
from advnorm.training.data import prepare

pytestmark = pytest.mark.slow  # trains a network


@pytest.fixture(scope="module")
def three_domains(tmp_path_factory) -> list[str]:
    from advnorm.data.phantom.generate import PhantomSpec, write_phantom

    root = tmp_path_factory.mktemp("three")
    return [str(p) for p in write_phantom(root / "ph", PhantomSpec(domains=3, subjects=3, seed=0, scale=0.5))]


def test_d_alone_learns_the_domains_of_held_out_subjects_within_seconds(three_domains):
    cfg = resolve("quick", overrides={"method": "adversarial"})
    data = prepare(open_domains(three_domains), cfg, METHOD_SPECS["adversarial"], log=lambda m: None)
    torch.manual_seed(0)
    d = build_discriminator(cfg.model, len(data.domains))  # the quick profile's D (8-16-32-64), 32^3 patches
    opt = torch.optim.Adam(d.parameters(), lr=1e-3)
    held_out = np.random.default_rng(0).choice(len(data.val), 96, replace=False)  # validation subjects: unseen

    def k_way_accuracy() -> float:
        d.eval()
        with torch.no_grad():
            hits = sum(
                int((d(x)[:, : len(data.domains)].argmax(1) == z).sum())
                for x, _, _, z in (data.batch(data.val, held_out[i : i + 32]) for i in range(0, len(held_out), 32))
            )
        d.train()
        return hits / len(held_out)

    cpu_start = time.process_time()
    accuracy = k_way_accuracy()
    for rows in DomainBalancedSampler(data.row_domains(data.train), 12, seed=0).epoch(0, 200):
        x, _, _, z = data.batch(data.train, rows)
        loss = F.cross_entropy(d(x), z)
        opt.zero_grad()
        loss.backward()
        opt.step()
    accuracy = k_way_accuracy()
    assert accuracy >= 0.9, accuracy
    # "within seconds" as CPU seconds of this process (all its threads): wall time grows with whatever else runs
    # on the machine (68 s once beside three trainings, 41 s beside two), the work D needs does not (28 s of CPU
    # beside two trainings)
    assert time.process_time() - cpu_start < 90
