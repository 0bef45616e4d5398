"""The 1 mm working grid and resampling both ways (``advnorm.data.grid``).

Regression: the fast path for axis-aligned grids read the rows of the voxel matrix as
output axes (they are input axes), which resampled 34 of the 48 axis orientations wrongly,
a coronally stored (LIA, FreeSurfer's convention) scan among them. Every orientation is
checked here against scipy's general path and against nibabel's own reorientation.
"""

from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from advnorm.data.grid import _signed_permutation, crop_box, resample, shift_affine, working_affine

ORIENTATIONS = [
    np.array([[p, s] for p, s in zip(perm, signs, strict=True)])
    for perm in itertools.permutations(range(3))
    for signs in itertools.product((1, -1), repeat=3)
]
IDS = ["".join(nib.orientations.ornt2axcodes(o)) for o in ORIENTATIONS]


def _volume(shape=(7, 9, 11), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def _affine(zooms=(1.0, 1.0, 1.0), origin=(-3.0, -4.0, 5.0)) -> np.ndarray:
    aff = np.diag([*zooms, 1.0])
    aff[:3, 3] = origin
    return aff


def _general(data, src_affine, dst_affine, dst_shape, order):
    vox = np.linalg.inv(src_affine) @ dst_affine
    return ndi.affine_transform(
        data.astype(np.float32),
        vox[:3, :3],
        offset=vox[:3, 3],
        output_shape=dst_shape,
        order=order,
        mode="constant",
        cval=0.0,
        prefilter=False,
    )


def _reoriented(data, affine, ornt):
    img = nib.Nifti1Image(data, affine).as_reoriented(ornt)
    return np.asarray(img.dataobj), img.affine


def test_there_are_48_axis_orientations():
    assert len(set(IDS)) == 48


@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("ornt", ORIENTATIONS, ids=IDS)
def test_fast_path_equals_the_general_path(ornt, order):
    data, affine = _reoriented(_volume(), _affine(), ornt)
    dst_affine, dst_shape = working_affine(affine, data.shape)
    vox = np.linalg.inv(affine) @ dst_affine
    assert _signed_permutation(vox[:3, :3], vox[:3, 3], data.shape, dst_shape) is not None  # the fast path is taken
    np.testing.assert_allclose(
        resample(data, affine, dst_affine, dst_shape, order=order),
        _general(data, affine, dst_affine, dst_shape, order),
        atol=1e-6,
    )


@pytest.mark.parametrize("ornt", ORIENTATIONS, ids=IDS)
def test_every_stored_orientation_gives_the_same_working_grid(ornt):
    data, affine = _volume(), _affine()
    ref_affine, ref_shape = working_affine(affine, data.shape)
    reference = resample(data, affine, ref_affine, ref_shape, order=0)
    moved, moved_affine = _reoriented(data, affine, ornt)
    dst_affine, dst_shape = working_affine(moved_affine, moved.shape)
    np.testing.assert_array_equal(dst_affine, ref_affine)
    assert dst_shape == ref_shape
    np.testing.assert_array_equal(resample(moved, moved_affine, dst_affine, dst_shape, order=0), reference)


@pytest.mark.parametrize("ornt", ORIENTATIONS, ids=IDS)
def test_working_grid_and_back_is_the_identity(ornt):
    data, affine = _reoriented(_volume(), _affine(), ornt)
    dst_affine, dst_shape = working_affine(affine, data.shape)
    there = resample(data, affine, dst_affine, dst_shape, order=0)
    np.testing.assert_array_equal(resample(there, dst_affine, affine, data.shape, order=0), data)


@pytest.mark.parametrize(
    "ornt", [ORIENTATIONS[k] for k in (0, 5, 13, 27, 40, 47)], ids=[IDS[k] for k in (0, 5, 13, 27, 40, 47)]
)
@pytest.mark.parametrize("kind", ["anisotropic", "oblique"])
def test_general_path_agrees_across_stored_orientations(ornt, kind):
    """Thick slices and tilted grids take the general path; the stored axis order must not matter there either."""
    data = _volume((12, 14, 6))
    affine = _affine((0.958, 0.958, 3.0))
    if kind == "oblique":
        c, s = np.cos(0.2), np.sin(0.2)
        affine[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]) @ affine[:3, :3]
    ref_affine, ref_shape = working_affine(affine, data.shape)
    reference = resample(data, affine, ref_affine, ref_shape, order=1)
    moved, moved_affine = _reoriented(data, affine, ornt)
    dst_affine, dst_shape = working_affine(moved_affine, moved.shape)
    np.testing.assert_allclose(dst_affine, ref_affine, atol=1e-9)
    assert dst_shape == ref_shape
    np.testing.assert_allclose(resample(moved, moved_affine, dst_affine, dst_shape, order=1), reference, atol=1e-5)


def test_labels_keep_their_values_and_images_become_float():
    labels = np.random.default_rng(1).integers(0, 4, (6, 7, 8)).astype(np.uint8)
    affine = _affine((1.2, 0.9, 2.5))
    dst_affine, dst_shape = working_affine(affine, labels.shape)
    out = resample(labels, affine, dst_affine, dst_shape, order=0)
    assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 1, 2, 3}
    assert resample(labels.astype(np.float64), affine, dst_affine, dst_shape, order=1).dtype == np.float32


def test_channel_stacks_resample_channel_by_channel():
    stack = np.stack([_volume(seed=1), _volume(seed=2)])
    affine = _affine((1.0, 1.0, 2.0))
    dst_affine, dst_shape = working_affine(affine, stack.shape[1:])
    out = resample(stack, affine, dst_affine, dst_shape, order=1)
    for c in range(2):
        np.testing.assert_array_equal(out[c], resample(stack[c], affine, dst_affine, dst_shape, order=1))


@pytest.mark.parametrize(
    "zooms,shape,expected",
    [
        ((1.0, 1.0, 1.0), (10, 12, 14), (10, 12, 14)),
        ((0.958, 0.958, 3.0), (240, 240, 48), (229, 229, 142)),
        ((2.0, 2.0, 2.0), (5, 5, 5), (9, 9, 9)),
    ],
)
def test_working_affine_covers_the_field_of_view(zooms, shape, expected):
    dst_affine, dst_shape = working_affine(_affine(zooms), shape)
    assert dst_shape == expected
    np.testing.assert_array_equal(dst_affine[:3, :3], np.eye(3))


def test_crop_box_and_shift_affine_describe_the_same_voxels():
    mask = np.zeros((20, 20, 20), bool)
    mask[5:8, 9:15, 2:3] = True
    box = crop_box(mask, margin=2)
    assert box == (slice(3, 10), slice(7, 17), slice(0, 5))
    affine = _affine((1.0, 1.0, 1.0), origin=(10.0, 20.0, 30.0))
    np.testing.assert_array_equal(shift_affine(affine, box)[:3, 3], [13.0, 27.0, 30.0])
