"""Phantom datasets in the exact layouts users download: iSEG-2017 and MRBrainS13 look-alikes.

The nnU-Net phantom (:mod:`.generate`) exercises the method; this one exercises everything
between a user's download and the method: Analyze pairs with a trailing 4th axis, iSEG's
label ids, 144 x 192 x 256 volumes with a small infant brain in them, MRBrainS's whole
heads with skull, scalp and background noise, 3 mm slices, eight-structure training
labels and an unaligned ``T1_1mm.nii``. Nothing comes from real data: every subject is
the ICBM 2009a template anatomy shipped with the package, with its own seeded size,
pose and deformation (:func:`.anatomy.make_subject`).

Layout written under ``out`` (see /work/shared/reference/datasets.md for the real ones)::

    realistic.json                         marker: spec, contrasts; "complete" once done
    iSeg-2017-Training/subject-N-T1.hdr/.img, -T2, -label   N = 1..iseg_subjects
    MRBrainS13DataNii/TrainingData/N/{T1,T1_1mm,T1_IR,T2_FLAIR,LabelsForTraining,LabelsForTesting}.nii
    MRBrainS13DataNii/TestData/N/{T1,T1_1mm,T1_IR,T2_FLAIR}.nii           (if asked for)

Every array is a pure function of (spec, subject): subject N of a set does not depend on
how many subjects are written. ``shrink`` divides every length (grids, brain, head
shells) by an integer while keeping the voxel sizes, for fast tests.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from advnorm.data.phantom.acquisition import THICK_SPACING, Contrast, acquire, bias_field, domain_contrast, rician
from advnorm.data.phantom.anatomy import make_subject
from advnorm.data.phantom.generate import previous_run, progress_bar
from advnorm.data.phantom.head import (
    SEQUENCES,
    ThickGrid,
    acquire_thick,
    build_head,
    head_textures,
    image_head,
    rotated_grid,
)
from advnorm.data.phantom.regions import lesion_fraction, template_regions, testing_labels, training_labels
from advnorm.data.volume_io import save_analyze, save_nifti
from advnorm.errors import AdvnormError
from advnorm.io_atomic import atomic_write_json

MARKER = "realistic.json"
GENERATOR = "advnorm.data.phantom.realistic"
ISEG_DIR = "iSeg-2017-Training"
MRBRAINS_DIR = "MRBrainS13DataNii"

ISEG_SHAPE = (144, 192, 256)  # axis 0 left-right, 1 posterior-anterior, 2 inferior-superior (nibabel's reading)
ISEG_SCALE = (0.80, 0.85)  # infant (6 months) brain relative to the adult template
ISEG_MARGIN_MM = 6.0  # least background between the brain and the volume's faces
ISEG_LABEL_IDS = np.array([0, 10, 150, 250], dtype=np.uint8)
INFANT_T2 = Contrast(
    name="InfantT2",
    means=(420.0, 190.0, 205.0),
    spreads=(22.0, 12.0, 16.0),
    noise=6.0,
    bias=0.05,
    description="infant-like T2: CSF bright, unmyelinated WM slightly above GM; 1 mm isotropic",
)

MRBRAINS_SHAPE = (240, 240, 48)
MRBRAINS_SCALE = (0.84, 0.90)  # elderly adults (~1.0-1.2 l of GM + WM; the template holds ~1.7 l)
ONE_MM_SHAPE = (256, 256, 160)  # T1_1mm.nii: the original 1 mm scan, on its own (rotated) grid
BELOW_MM = 30.0  # world grid below the 3 mm field of view, so T1_1mm sees some neck
_TOP_CLEARANCE_MM = 13.0  # skull and scalp above the brain, then 1-5 mm of air to the top slice


@dataclass(frozen=True)
class RealisticSpec:
    """What to write: subjects per set, the seed, and ``shrink`` (1: real sizes; 2-4: every length divided)."""

    iseg_subjects: int = 10
    mrbrains_subjects: int = 5
    mrbrains_test_subjects: int = 0
    seed: int = 0
    shrink: int = 1


def write_realistic(out: Path, spec: RealisticSpec = RealisticSpec(), progress: bool = False) -> dict[str, Path]:
    """Write both datasets under ``out``; return ``{"iseg2017": ..., "mrbrains13": ...}`` (the folders to give advnorm).

    Refuses (:class:`AdvnormError`) a bad ``spec``, or an ``out`` that is a file or a
    non-empty folder not written by a previous run of this generator; over a previous
    run, the two dataset folders it wrote are replaced and nothing else is touched.
    """
    out = Path(out)
    _check_spec(spec, out)
    previous_run(out, MARKER, GENERATOR, "realistic phantom")
    folders = {"iseg2017": out / ISEG_DIR, "mrbrains13": out / MRBRAINS_DIR}
    for folder in folders.values():
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise AdvnormError(
                "not a dataset folder a previous realistic phantom run wrote (a link or a file); "
                "move it away or choose another output folder",
                folder,
            )
    for folder in folders.values():
        if folder.exists():
            shutil.rmtree(folder)
    out.mkdir(parents=True, exist_ok=True)
    marker = {
        "generator": GENERATOR,
        "complete": False,
        "spec": asdict(spec),
        "datasets": {k: v.name for k, v in folders.items()},
    }
    atomic_write_json(out / MARKER, marker)

    bar = progress_bar(spec.iseg_subjects + spec.mrbrains_subjects + spec.mrbrains_test_subjects, progress, "realistic")
    folders["iseg2017"].mkdir()
    for n in range(1, spec.iseg_subjects + 1):
        bar.set_postfix_str(f"iSEG subject-{n}", refresh=False)
        for kind, data in iseg_case(spec, n).items():  # T1 first: a crash leaves at worst an unlabelled subject
            save_analyze(folders["iseg2017"] / f"subject-{n}-{kind}.hdr", data)
        bar.update(1)
    parts = [("TrainingData", n, False) for n in range(1, spec.mrbrains_subjects + 1)]
    parts += [("TestData", n, True) for n in range(1, spec.mrbrains_test_subjects + 1)]
    for part, n, test in parts:
        bar.set_postfix_str(f"MRBrainS {part}/{n}", refresh=False)
        _write_mrbrains_subject(folders["mrbrains13"] / part / str(n), mrbrains_case(spec, n, test=test))
        bar.update(1)
    bar.close()

    marker.update(complete=True, **_facts())
    atomic_write_json(out / MARKER, marker)
    return folders


def planned_headers(spec: RealisticSpec = RealisticSpec()) -> dict[str, tuple[tuple[int, ...], tuple[float, ...]]]:
    """(shape, voxel size) of every kind of file ``spec`` writes, as the headers will say, without writing.

    Keys name files with ``N`` for the subject; ``TestData`` images share the ``TrainingData`` geometry.
    """
    s = spec.shrink
    iseg: tuple[tuple[int, ...], tuple[float, ...]] = ((*_shrunk(ISEG_SHAPE, s), 1), (1.0, 1.0, 1.0, 1.0))
    thick = _thick_grid(s)
    aligned: tuple[tuple[int, ...], tuple[float, ...]] = (thick.shape, thick.spacing)
    one_mm: tuple[tuple[int, ...], tuple[float, ...]] = (_shrunk(ONE_MM_SHAPE, s), (1.0, 1.0, 1.0))
    out = {f"{ISEG_DIR}/subject-N-{kind}.hdr": iseg for kind in ("T1", "T2", "label")}
    for name in ("T1", "T1_IR", "T2_FLAIR", "LabelsForTraining", "LabelsForTesting"):
        out[f"{MRBRAINS_DIR}/TrainingData/N/{name}.nii"] = aligned
    out[f"{MRBRAINS_DIR}/TrainingData/N/T1_1mm.nii"] = one_mm
    return out


# ------------------------------------------------------------------------------------ iSEG-2017


def iseg_case(spec: RealisticSpec, n: int) -> dict[str, np.ndarray]:
    """Subject ``n`` of the iSEG-like set: {"T1", "T2": int16, "label": uint8 0/10/150/250}, as stored.

    The brain is drawn at 0.80-0.85 of the adult template (smaller again if it would come
    within 6 mm of the volume's faces), imaged with the infant T1 and T2 contrasts,
    skull-stripped (exactly 0 outside), and placed near the centre of the box. Axis 0 is
    stored right-to-left, as nibabel's default Analyze affine assumes.
    """
    shape = _shrunk(ISEG_SHAPE, spec.shrink)
    margin = int(math.ceil(ISEG_MARGIN_MM / spec.shrink))
    geometry = _rng(spec, 1, n, 0)
    scale = geometry.uniform(*ISEG_SCALE) / spec.shrink
    for _ in range(8):
        anatomy = make_subject(_rng(spec, 1, n, 1), scale)
        lo, hi = _bbox(anatomy.mask)
        if np.all(hi - lo + 2 * margin <= shape):
            break
        scale *= 0.95  # too big for the box: the same subject, a little smaller
    else:  # pragma: no cover - the template at 0.85 x 1.06 fits with room to spare
        raise RuntimeError("iSEG phantom brain does not fit its volume")
    t1 = acquire(anatomy, domain_contrast(1, spec.seed), _rng(spec, 1, n, 2))  # domain 1 is the fixed InfantT1
    t2 = acquire(anatomy, INFANT_T2, _rng(spec, 1, n, 3))

    slack = np.array(shape) - (hi - lo) - 2 * margin
    offset = margin + slack // 2 + np.rint(geometry.uniform(-0.25, 0.25, size=3) * slack).astype(int) - lo
    arrays = {
        "T1": _to_int16(t1, anatomy.mask),
        "T2": _to_int16(t2, anatomy.mask),
        "label": ISEG_LABEL_IDS[anatomy.label],
    }
    return {k: _paste(np.zeros(shape, dtype=v.dtype), v, offset)[::-1] for k, v in arrays.items()}


# ------------------------------------------------------------------------------------ MRBrainS13


def mrbrains_case(spec: RealisticSpec, n: int, *, test: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Subject ``n`` of MRBrainS13's TrainingData (or TestData): file stem -> (array, affine), as stored.

    The brain (0.84-0.90 of the template, with periventricular lesions) is placed in a
    whole head on a 1 mm world grid, its top 14-18 mm under the top slice; the 48 slices
    of 3 mm then cut the head below the cerebellum, as in the real scans. Arrays are
    stored with axes 0 and 1 reversed (LPS-like, as ITK-converted NIfTI often is).
    """
    part = 3 if test else 2
    grid = _thick_grid(spec.shrink)
    world_shape = grid.world_shape()
    geometry = _rng(spec, part, n, 0)
    anatomy = make_subject(
        _rng(spec, part, n, 1), geometry.uniform(*MRBRAINS_SCALE) / spec.shrink, regions=template_regions()
    )
    lesion = lesion_fraction(anatomy, _rng(spec, part, n, 2), shrink=spec.shrink)

    lo, hi = _bbox(anatomy.mask)
    centre = np.array(world_shape) / 2.0 + geometry.uniform(-3.0, 3.0, size=3) / spec.shrink
    offset = np.rint(centre - (lo + hi) / 2.0).astype(int)
    top = grid.zs[-1] + 1 - (_TOP_CLEARANCE_MM + geometry.uniform(1.0, 5.0)) / spec.shrink
    offset[2] = int(round(top)) - hi[2]
    probs = _paste(np.zeros((3, *world_shape), dtype=np.float32), anatomy.probs, offset, lead=1)
    head = build_head(
        probs, _paste(np.zeros(world_shape, np.float32), lesion, offset), _rng(spec, part, n, 3), shrink=spec.shrink
    )
    del probs
    textures = head_textures(_rng(spec, part, n, 4), world_shape)
    origin = (offset + (lo + hi) / 2.0).round()  # the brain's centre is at 0 mm
    affine = _store_lps(grid.affine(origin), grid.shape)

    files: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    imaging = _rng(spec, part, n, 5)
    for seq in SEQUENCES:
        signal = image_head(head, seq, imaging, textures)
        files[seq.name] = (_to_int16(acquire_thick(signal, head.mask, grid, seq, imaging))[::-1, ::-1], affine)
        if seq.name == "T1":
            files["T1_1mm"] = _one_mm_scan(signal, origin, seq.noise, spec.shrink, geometry, imaging)
    if not test:
        assert anatomy.regions is not None  # made with regions above
        training = training_labels(anatomy.label, anatomy.regions, lesion)
        training = grid.nearest(_paste(np.zeros(world_shape, np.uint8), training, offset))[::-1, ::-1]
        files["LabelsForTraining"] = (training, affine)
        files["LabelsForTesting"] = (testing_labels(training), affine)
    return files


def _one_mm_scan(
    signal: np.ndarray,
    origin: np.ndarray,
    noise: float,
    shrink: int,
    geometry: np.random.Generator,
    imaging: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """``T1_1mm.nii``: the T1 object on its own 1 mm grid, rotated up to 5 degrees and shifted: not aligned."""
    shape = _shrunk(ONE_MM_SHAPE, shrink)
    angles = np.deg2rad(geometry.uniform(-5.0, 5.0, size=3))
    rotation = _rotation(angles)
    centre_world = np.array(signal.shape) / 2.0 + geometry.uniform(-5.0, 5.0, size=3) / shrink
    scan = rotated_grid(signal, shape, rotation, centre_world)
    scan *= bias_field(imaging, scan > 0, 0.08)
    scan = rician(scan, imaging, noise)
    affine = np.eye(4)
    affine[:3, :3] = rotation
    affine[:3, 3] = centre_world - rotation @ ((np.array(shape) - 1.0) / 2.0) - origin
    return _to_int16(scan)[::-1, ::-1], _store_lps(affine, shape)


def _write_mrbrains_subject(folder: Path, files: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Write one subject folder so that it appears whole: files go to a hidden sibling renamed into place."""
    staging = folder.with_name(f".partial-{folder.name}")
    if staging.exists():
        shutil.rmtree(staging)
    for stem, (data, affine) in files.items():
        save_nifti(staging / f"{stem}.nii", data, affine)
    os.replace(staging, folder)


# ------------------------------------------------------------------------------------ helpers


def _rng(spec: RealisticSpec, part: int, n: int, stream: int) -> np.random.Generator:
    """Independent streams per (set, subject, purpose): 1 iSEG, 2 MRBrainS training, 3 MRBrainS test."""
    return np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(part, n, stream, spec.shrink)))


def _thick_grid(shrink: int) -> ThickGrid:
    below = int(round(BELOW_MM / shrink))
    return ThickGrid(shape=_shrunk(MRBRAINS_SHAPE, shrink), spacing=THICK_SPACING, first=below + 1)


def _shrunk(shape: tuple[int, int, int], shrink: int) -> tuple[int, int, int]:
    x, y, z = (int(round(n / shrink)) for n in shape)
    return x, y, z


def _bbox(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.argwhere(mask)
    return idx.min(axis=0), idx.max(axis=0) + 1


def _paste(dst: np.ndarray, src: np.ndarray, offset: np.ndarray, *, lead: int = 0) -> np.ndarray:
    """Copy ``src`` into ``dst`` at ``offset`` (spatial axes after ``lead`` leading ones); what falls outside is cut."""
    d_sl, s_sl = [slice(None)] * lead, [slice(None)] * lead
    for o, ns, nd in zip(offset, src.shape[lead:], dst.shape[lead:], strict=True):
        a, b = max(int(o), 0), min(int(o) + ns, nd)
        if a >= b:
            return dst
        d_sl.append(slice(a, b))
        s_sl.append(slice(a - int(o), b - int(o)))
    dst[tuple(d_sl)] = src[tuple(s_sl)]
    return dst


def _to_int16(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Scanner-like integers; inside ``mask`` at least 1, so ``image != 0`` is exactly the mask."""
    out = np.clip(np.rint(image), 0, np.iinfo(np.int16).max).astype(np.int16)
    if mask is not None:
        out = np.where(mask, np.maximum(out, 1), 0).astype(np.int16)
    return out


def _store_lps(ras_affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The affine of an array stored with axes 0 and 1 reversed (``array[::-1, ::-1]``)."""
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[0, 3], flip[1, 3] = shape[0] - 1, shape[1] - 1
    return ras_affine @ flip


def _rotation(angles: np.ndarray) -> np.ndarray:
    (cx, cy, cz), (sx, sy, sz) = np.cos(angles), np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _facts() -> dict:
    return {
        "description": "Synthetic iSEG-2017 / MRBrainS13 look-alikes built from the ICBM 2009a template tissue maps "
        "(advnorm realistic phantom). Not real patient data.",
        "iseg2017": {"T1": domain_contrast(1, 0).to_json(), "T2": INFANT_T2.to_json(), "brain_scale": list(ISEG_SCALE)},
        "mrbrains13": {"sequences": [s.to_json() for s in SEQUENCES], "brain_scale": list(MRBRAINS_SCALE)},
    }


def _check_spec(spec: RealisticSpec, out: Path) -> None:
    def is_int(v) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    for name, low in (("iseg_subjects", 1), ("mrbrains_subjects", 1), ("mrbrains_test_subjects", 0), ("seed", 0)):
        value = getattr(spec, name)
        if not is_int(value) or value < low or (name != "seed" and value > 999):
            upper = "" if name == "seed" else " to 999"
            raise AdvnormError(f"realistic phantom {name} must be an integer from {low}{upper}, got {value!r}", out)
    if not is_int(spec.shrink) or not 1 <= spec.shrink <= 4:
        raise AdvnormError(f"realistic phantom shrink must be an integer from 1 to 4, got {spec.shrink!r}", out)
