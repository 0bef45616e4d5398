import numpy as np
import pytest

from advnorm.data.patches import PatchIndex, gather, patch_corner
from advnorm.data.sampler import DomainBalancedSampler
from advnorm.data.splits import split_subjects, stratified_patch_split
from advnorm.errors import AdvnormError


@pytest.mark.parametrize(
    "shape, box, stride", [((40, 40, 40), (8, 30, 8, 30, 8, 30), 8), ((33, 50, 21), (5, 20, 0, 50, 3, 9), 4)]
)
def test_patch_index_counts_grid_points_inside_mask(shape, box, stride):
    mask = np.zeros(shape, bool)
    x0, x1, y0, y1, z0, z1 = box
    mask[x0:x1, y0:y1, z0:z1] = True
    idx = PatchIndex.build([mask, mask], patch_size=16, stride=stride)
    count = lambda a, b: len([v for v in range(0, 10**3, stride) if a <= v < b])  # noqa: E731
    expected = count(x0, x1) * count(y0, y1) * count(z0, z1)
    assert len(idx) == 2 * expected
    assert set(idx.subjects.tolist()) == {0, 1}
    assert np.all(idx.entries[:, 1:] % stride == 0)
    assert all(mask[x, y, z] for _, x, y, z in idx.entries)


def test_patches_are_centred_on_their_centre_voxel():
    vol = np.arange(48**3, dtype=np.float32).reshape(48, 48, 48)
    idx = PatchIndex(np.array([[0, 24, 20, 30]], np.int32), patch_size=16)
    p = gather([vol], idx, np.array([0]))[0]
    assert p.shape == (16, 16, 16)
    assert p[8, 8, 8] == vol[24, 20, 30]  # centre voxel at index size//2
    assert p[0, 0, 0] == vol[16, 12, 22]


def test_patches_near_the_border_are_shifted_inside():
    assert tuple(patch_corner(np.array([2, 47, 20]), (48, 48, 48), 16)) == (0, 32, 12)


def test_index_memory_is_proportional_to_patches_not_voxels():
    mask = np.ones((64, 64, 64), bool)
    idx = PatchIndex.build([mask], patch_size=32, stride=8)
    assert idx.entries.nbytes == len(idx) * 16


@pytest.mark.parametrize("n, expected", [(3, (1, 1, 1)), (5, (3, 1, 1)), (10, (6, 2, 2)), (7, (5, 1, 1))])
def test_subject_split_sizes_and_disjointness(n, expected):
    ids = [f"s{i}" for i in range(n)]
    s = split_subjects(ids, (0.6, 0.2, 0.2), seed=3, domain="d")
    assert (len(s.train), len(s.val), len(s.test)) == expected
    assert not (set(s.train) & set(s.val) or set(s.train) & set(s.test) or set(s.val) & set(s.test))
    assert set(s.train) | set(s.val) | set(s.test) == set(ids)
    assert s == split_subjects(list(reversed(ids)), (0.6, 0.2, 0.2), seed=3, domain="d")  # order-independent


@pytest.mark.parametrize("n", [0, 1, 2])
def test_subject_split_needs_three_subjects(n):
    with pytest.raises(AdvnormError, match="at least 3"):
        split_subjects([f"s{i}" for i in range(n)], (0.6, 0.2, 0.2), seed=0, domain="mydomain")


def test_patch_split_warns_and_stratifies():
    classes = np.repeat([1, 2, 3], [100, 50, 250])
    with pytest.warns(UserWarning, match="overlapping"):
        tr, va, te = stratified_patch_split(classes, (0.6, 0.2, 0.2), seed=0)
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(va) + len(te) == 400
    for c, n in ((1, 100), (2, 50), (3, 250)):
        assert np.sum(classes[tr] == c) == round(0.6 * n)


@pytest.mark.parametrize(
    "sizes, batch", [((100, 10), 12), ((5, 50, 500), 12), ((30, 30), 7), ((9,) * 17, 16), ((4, 40, 6, 12, 8), 3)]
)
def test_sampler_balances_domains(sizes, batch):
    doms = np.repeat(np.arange(len(sizes)), sizes)
    s = DomainBalancedSampler(doms, batch, seed=0)
    batches = list(s.epoch(0, 20))
    for b in batches:
        counts = np.bincount(doms[b], minlength=len(sizes))
        assert len(b) == batch and counts.max() - counts.min() <= 1
    # more domains than a batch holds (ABIDE's 17 sites, batch 16): each domain's turn comes round in turn
    seen = np.bincount(doms[np.concatenate(batches)], minlength=len(sizes))
    assert seen.max() - seen.min() <= 1


def test_sampler_is_resumable_and_shardable():
    doms = np.repeat([0, 1], [40, 60])
    s = DomainBalancedSampler(doms, 8, seed=5)
    full = list(s.epoch(2, 10))
    assert all(np.array_equal(a, b) for a, b in zip(full[4:], s.epoch(2, 10, start=4), strict=True))
    shards = [list(DomainBalancedSampler(doms, 8, seed=5, rank=r, world_size=2).epoch(2, 10)) for r in (0, 1)]
    for step in range(10):
        assert sorted(np.concatenate([shards[0][step], shards[1][step]])) == sorted(full[step])
