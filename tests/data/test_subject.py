"""``build_subject``: one subject on the 1 mm working grid, whatever way its file stores the axes.

Regression (issue 15.1): the same iSEG subject saved in LAS and in LIA (coronal storage,
FreeSurfer's convention) gave 548,593 GM voxels in one and 423,303 in the other on the
working grid; predictions and metrics followed. Here the stored orientation must not change
a single voxel of the working-grid image, label or mask.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from advnorm.data.subject import build_subject
from tests.fixtures import brain_phantom, nifti_affine, save_nifti, t1_image, to_classes

CODES = ["RAS", "LAS", "LIA", "LPS", "PIR", "SAR", "ILP"]


def _stored(tmp_path, detail, zooms, code):
    """Image and label of ``detail`` written in the axis order ``code`` (same world content)."""
    affine = nifti_affine(zooms)
    image = nib.Nifti1Image(t1_image(detail, seed=3), affine)
    label = nib.Nifti1Image(to_classes(detail), affine)
    ornt = nib.orientations.ornt_transform(nib.orientations.io_orientation(affine), nib.orientations.axcodes2ornt(code))
    paths = []
    for img, kind in ((image, "image"), (label, "label")):
        moved = img.as_reoriented(ornt)
        paths.append(save_nifti(tmp_path / code / f"{kind}.nii.gz", np.asarray(moved.dataobj), moved.affine))
    return paths


@pytest.mark.parametrize(
    "zooms,shape", [((1.0, 1.0, 1.0), (20, 28, 36)), ((0.958, 0.958, 3.0), (30, 34, 10))], ids=["1mm", "3mm-slices"]
)
def test_stored_orientation_does_not_change_the_working_grid(tmp_path, zooms, shape):
    detail = brain_phantom(shape, zooms, seed=1)
    subjects = {}
    for code in CODES:
        image, label = _stored(tmp_path, detail, zooms, code)
        subjects[code] = build_subject(image, label, domain="d", case_id=code, layout="file")
    ref = subjects["RAS"]
    for code, s in subjects.items():
        assert s.shape == ref.shape, code
        np.testing.assert_allclose(s.affine, ref.affine, atol=1e-9, err_msg=code)
        np.testing.assert_array_equal(s.mask, ref.mask, err_msg=code)
        np.testing.assert_array_equal(s.label, ref.label, err_msg=code)
        np.testing.assert_allclose(s.image, ref.image, atol=1e-3, err_msg=code)


@pytest.mark.parametrize("code", CODES)
def test_to_source_returns_to_the_stored_grid(tmp_path, code):
    detail = brain_phantom((20, 28, 36), (1.0, 1.0, 1.0), seed=2)
    image, label = _stored(tmp_path, detail, (1.0, 1.0, 1.0), code)
    s = build_subject(image, label, domain="d", case_id=code, layout="file")
    stored = np.asarray(nib.load(label).dataobj)
    np.testing.assert_array_equal(s.to_source(s.label, order=0), stored)
