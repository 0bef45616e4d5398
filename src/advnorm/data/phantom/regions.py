"""MRBrainS-style sub-structures on the phantom anatomy: cerebellum, brainstem, basal ganglia,
ventricles and white-matter lesions.

MRBrainS13's ``LabelsForTraining.nii`` splits the three tissues into eight structures
(1 cortical GM, 2 basal ganglia, 3 WM, 4 WM lesions, 5 extracerebral CSF, 6 ventricles,
7 cerebellum, 8 brainstem). The phantom anatomy has only CSF/GM/WM probabilities, so the
structures are drawn once, roughly, on the ICBM 2009a template grid (1.5 mm voxels; x
towards the right, y anterior, z superior) from landmarks read off the template itself,
and each subject carries them along its own warp (``make_subject(..., regions=...)``):

* cerebellum: tissue below a tent-shaped tentorium, posterior to the brainstem;
* brainstem: an elliptic column below the midbrain, tilted forward as it rises;
* basal ganglia: GM inside a central ellipsoid (caudate, putamen, pallidum, thalamus);
* ventricles: template CSF inside a central ellipsoid that lies deeper than 7 template
  voxels from the brain's surface, minus the interhemispheric fissure above the
  corpus callosum;
* periventricular white matter (within ~10 mm of the ventricles): where the seeded
  white-matter lesions of each subject are placed, as in the elderly MRBrainS subjects.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage as ndi

from advnorm.data.phantom.anatomy import Anatomy, labels_from_probs, load_template

CEREBELLUM, BRAINSTEM, DEEP_GM, VENTRICLES, PERIVENTRICULAR = 1, 2, 3, 4, 5
"""Region ids of :func:`template_regions` (0: none of these)."""

TRAINING_NAMES = {
    0: "background",
    1: "cortical GM",
    2: "basal ganglia",
    3: "WM",
    4: "WM lesions",
    5: "extracerebral CSF",
    6: "ventricles",
    7: "cerebellum",
    8: "brainstem",
}
TESTING_FROM_TRAINING = np.array([0, 2, 2, 3, 3, 1, 1, 0, 0], dtype=np.uint8)
"""``LabelsForTraining`` id -> ``LabelsForTesting`` id (1 CSF, 2 GM, 3 WM; cerebellum, brainstem -> 0)."""

_MIDLINE_X = 53.0  # template voxel of the interhemispheric plane
_LESION_REACH_VOX = 7.0  # periventricular zone: template voxels (x 1.5 mm) from the ventricles


@functools.lru_cache(maxsize=1)
def template_regions() -> np.ndarray:
    """Region ids (uint8) on the template grid; computed once per process, read-only."""
    tpl = load_template()
    label, _ = labels_from_probs(tpl.probs)
    x, y, z = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in label.shape], indexing="ij", sparse=True)
    dx = x - _MIDLINE_X

    tentorium = 40.0 - 12.0 * (dx / 45.0) ** 2 - 6.0 * np.clip((45.0 - y) / 40.0, 0.0, None)
    cerebellum = (z < tentorium) & (y < 52.0)
    stem_y = 47.0 + 13.0 * z / 45.0  # the column's centre moves forward as it rises
    brainstem = ((dx / 9.0) ** 2 + ((y - stem_y) / 8.0) ** 2 < 1.0) & (z < 45.0)
    deep = (dx / 20.0) ** 2 + ((y - 68.0) / 24.0) ** 2 + ((z - 53.0) / 14.0) ** 2 < 1.0
    depth = ndi.distance_transform_edt(ndi.binary_fill_holes(label > 0))
    central = (dx / 24.0) ** 2 + ((y - 60.0) / 42.0) ** 2 + ((z - 55.0) / 18.0) ** 2 < 1.0
    fissure = (np.abs(dx) <= 3.0) & (z >= 60.0)
    ventricles = central & (label == 1) & (depth > 7.0) & ~fissure
    periventricular = (label == 3) & (ndi.distance_transform_edt(~ventricles) <= _LESION_REACH_VOX)

    regions = np.zeros(label.shape, dtype=np.uint8)
    for rid, where in (
        (PERIVENTRICULAR, periventricular),
        (DEEP_GM, deep),
        (CEREBELLUM, cerebellum),
        (BRAINSTEM, brainstem),
        (VENTRICLES, ventricles),
    ):  # later wins
        regions[where] = rid
    regions.setflags(write=False)
    return regions


def lesion_fraction(
    anatomy: Anatomy, rng: np.random.Generator, *, shrink: float = 1.0, count: tuple[int, int] = (2, 12)
) -> np.ndarray:
    """Share of each voxel's white matter that is lesion (float32 in [0, 1]) for one subject.

    ``count`` (low, high-exclusive) balls of radius 2-5 mm (divided by ``shrink``, at
    least one voxel) with a 1 mm soft edge, centred on periventricular white matter.
    """
    if anatomy.regions is None:
        raise ValueError("the anatomy carries no regions: make it with make_subject(..., regions=template_regions())")
    out = np.zeros(anatomy.label.shape, dtype=np.float32)
    candidates = np.argwhere((anatomy.regions == PERIVENTRICULAR) & (anatomy.label == 3))
    n = int(rng.integers(*count))
    if n == 0 or len(candidates) == 0:
        return out
    centres = candidates[rng.integers(0, len(candidates), size=n)]
    radii = np.maximum(rng.uniform(2.0, 5.0, size=n) / shrink, 1.0)
    for c, r in zip(centres, radii, strict=True):
        lo = np.maximum(c - int(np.ceil(r)) - 1, 0)
        hi = np.minimum(c + int(np.ceil(r)) + 2, out.shape)
        grids = np.ogrid[tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))]
        dist = np.sqrt(sum((g - ci).astype(np.float32) ** 2 for g, ci in zip(grids, c, strict=True)))
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        np.maximum(out[box], np.clip(r + 0.5 - dist, 0.0, 1.0), out=out[box])
    return out


def training_labels(label: np.ndarray, regions: np.ndarray, lesion: np.ndarray) -> np.ndarray:
    """MRBrainS13 ``LabelsForTraining`` ids (0-8) from tissue labels 0-3, region ids and the lesion share."""
    csf, gm, wm = label == 1, label == 2, label == 3
    out = np.zeros(label.shape, dtype=np.uint8)
    out[csf] = 5
    out[csf & (regions == VENTRICLES)] = 6
    out[gm] = 1
    out[gm & ((regions == DEEP_GM) | (regions == VENTRICLES))] = 2
    out[wm] = 3
    out[wm & (lesion >= 0.5)] = 4
    tissue = gm | wm
    out[tissue & (regions == CEREBELLUM)] = 7
    out[tissue & (regions == BRAINSTEM)] = 8
    return out


def testing_labels(training: np.ndarray) -> np.ndarray:
    """MRBrainS13 ``LabelsForTesting`` (0 background, 1 CSF, 2 GM, 3 WM) from ``LabelsForTraining``."""
    return TESTING_FROM_TRAINING[training]
