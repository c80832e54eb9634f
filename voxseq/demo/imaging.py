"""Synthetic 3D imaging cohort: organ-like blob plus lesion-like spheres, several "scanners".

Every subject is drawn from ``numpy.random.default_rng([seed, index])``, so a subject's data do not
depend on how many subjects are generated. Volumes are written as NIfTI with the subject's own
anisotropic spacing and one of several storage orientations (RAS, LPS, LAS, PSR), so the rest of
the pipeline has to handle orientation and spacing exactly as for real data.

Quality-control outliers (``make_subject(..., corruption=...)``, used for the two extra subjects
of ``make_demo_cohort(..., outliers=True)``) are applied to the RAS array before the storage
orientation, and draw nothing from the subject's random stream, so a corrupted subject has
exactly the anatomy, bias field and noise of the same index without corruption:

* ``motion_ghosting`` imitates periodic motion (breathing, pulsation) during a Cartesian
  acquisition: along the phase-encoding axis (in-plane axis 1 of the RAS array, A-P) every other
  k-space line carries a phase error, so a replica of the object shifted by half the field of
  view appears at ``GHOST_LEVEL`` (40 %) of its intensity, wrapped around into the background.
  It acts on the object signal (times the bias field); noise and scanner scaling follow as usual.
* ``inverted_contrast`` imitates a scan with the wrong weighting (a T2-like series filed as the
  T1 one): inside the subject the intensities are mirrored, so body is bright and organ and
  lesions dark, while the background stays background; noise and scanner scaling as usual.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform
from scipy.ndimage import gaussian_filter

from voxseq.demo.layout import imaging_files
from voxseq.io.atomic import atomic_path

LABEL_NAMES = ("background", "organ", "lesion")
BURDEN_SMALL = 1400.0  # class threshold of the small (test) volumes, mm³
CORRUPTIONS = ("motion_ghosting", "inverted_contrast")
GHOST_LEVEL = 0.4  # ghost intensity relative to the object
# further MRI-like contrasts of the same anatomy, written as image_<name> columns
# (demo.imaging_channels): body, organ and lesion intensities (the first image's are 1,
# 1 + organ_contrast, 1 + organ_contrast + lesion_contrast). T2-like: the organ dark, the
# lesion bright; FLAIR-like: both a little brighter than the body.
EXTRA_CONTRASTS = {"t2": (1.0, 0.55, 2.4), "flair": (1.0, 1.35, 1.9)}


def demo_channel_names(n: int) -> list[str]:
    """The channel names of a demo with ``n`` images a subject: ``image``, then ``t2``,
    ``flair``."""
    if not 1 <= n <= 1 + len(EXTRA_CONTRASTS):
        raise ValueError(f"demo imaging channels: 1 to {1 + len(EXTRA_CONTRASTS)}, got {n}")
    return ["image", *list(EXTRA_CONTRASTS)[: n - 1]]


@dataclass(frozen=True)
class Scanner:
    """Intensity model of one acquisition site."""

    name: str
    scale: float
    offset: float
    noise: float
    dtype: str


@dataclass(frozen=True)
class ImagingDemoConfig:
    """Size and difficulty of the demo imaging cohort (see docs/demo.md)."""

    fov_mm: tuple[float, float, float] = (96.0, 96.0, 140.0)
    inplane_spacing: tuple[float, float] = (0.9, 1.2)
    slice_spacing: tuple[float, float] = (2.0, 2.8)
    organ_contrast: float = 2.0
    lesion_contrast: float = 1.5
    lesion_radius_mm: tuple[float, float] = (4.0, 8.0)
    lesions: tuple[int, int] = (1, 3)  # per subject, of lesion_radius_mm
    # a share of subjects carries more and larger lesions; the class still comes from the
    # measured burden of these lesions (not the planted QTL's), so light subjects with large
    # lesions and heavy ones with small lesions sit near the threshold
    heavy_fraction: float = 0.5
    heavy_lesions: tuple[int, int] = (4, 6)
    heavy_lesion_radius_mm: tuple[float, float] = (5.5, 8.5)
    orientations: tuple[str, ...] = ("RAS", "LPS", "LAS", "PSR")
    scanners: tuple[Scanner, ...] = field(
        default_factory=lambda: (
            Scanner("siteA", 100.0, 0.0, 0.35, "float32"),
            Scanner("siteB", 250.0, 40.0, 0.5, "int16"),
        )
    )
    burden_threshold_mm3: float = 2500.0
    min_shape: int = 48

    @classmethod
    def small(cls) -> ImagingDemoConfig:
        """A tiny variant for tests: about 32 x 32 x 24 voxels."""
        return cls(
            fov_mm=(40.0, 40.0, 60.0),
            inplane_spacing=(1.2, 1.4),
            slice_spacing=(2.4, 2.8),
            min_shape=16,
            lesion_radius_mm=(4.0, 6.0),
            heavy_lesion_radius_mm=(4.5, 6.0),
            burden_threshold_mm3=BURDEN_SMALL,
        )

    def shifted(self, shift: float) -> ImagingDemoConfig:
        """Another scanner distribution: intensity scale, offset and noise moved by ``shift``."""
        if shift == 0:
            return self
        scanners = tuple(
            Scanner(
                f"{s.name}-shift",
                s.scale * (1 + shift),
                s.offset + 100 * shift,
                s.noise * (1 + 0.5 * shift),
                s.dtype,
            )
            for s in self.scanners
        )
        return replace(self, scanners=scanners)


def phantom(
    rng: np.random.Generator,
    coords: np.ndarray,
    cfg: ImagingDemoConfig,
    heavy: bool = False,
    lesions: bool = True,
    extra_lesions: int = 0,
    extra_rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Noise-free intensity and label maps at world coordinates.

    Parameters
    ----------
    rng
        Source of the subject's anatomy.
    coords
        (3, X, Y, Z) RAS world coordinates in mm of the voxel centres.
    heavy
        Draw the lesions from ``heavy_lesions`` / ``heavy_lesion_radius_mm``.
    lesions
        False: a lesion-free subject; its lesions are drawn (the random stream, hence the rest
        of the subject, is unchanged) but not painted.
    extra_lesions, extra_rng
        Further lesions of radius ``QTL_LESION_RADIUS_MM`` (the planted QTL's, see
        :mod:`voxseq.demo.qtl`), placed from ``extra_rng`` in the organ's outer shell (0.6-0.85
        of its radii), after the others: ``rng``'s draws do not change.

    Returns
    -------
    image : (X, Y, Z) float32, body 1, organ 1 + contrast, lesion higher still
    label : (X, Y, Z) uint8, 0 background, 1 organ, 2 lesion
    disease_voxels : int
        Lesion voxels before the extra lesions are painted (the subject's class is drawn from
        them, see :func:`make_subject`).
    """
    x, y, z = coords
    fov = np.array(cfg.fov_mm)
    body = (x / (0.46 * fov[0])) ** 2 + (y / (0.42 * fov[1])) ** 2 + (z / (0.47 * fov[2])) ** 2 <= 1
    f = fov / np.array([96.0, 96.0, 140.0])
    centre = rng.uniform(-8, 8, size=3) * f
    radii = rng.uniform((22, 18, 26), (30, 25, 38)) * f
    dx, dy, dz = x - centre[0], y - centre[1], z - centre[2]
    r = np.sqrt((dx / radii[0]) ** 2 + (dy / radii[1]) ** 2 + (dz / radii[2]) ** 2)
    theta = np.arctan2(dy, dx)
    phi = np.arctan2(dz, np.hypot(dx, dy))
    k = rng.integers(2, 5, size=2)
    wobble = 1.0 + 0.12 * np.sin(k[0] * theta + rng.uniform(0, 6.3)) * np.cos(k[1] * phi)
    organ = r <= wobble
    label = organ.astype(np.uint8)
    image = body.astype(np.float32) + cfg.organ_contrast * organ
    total = 0.0
    count, radius = (
        (cfg.heavy_lesions, cfg.heavy_lesion_radius_mm)
        if heavy
        else (cfg.lesions, cfg.lesion_radius_mm)
    )
    for _ in range(int(rng.integers(count[0], count[1] + 1))):
        rad = rng.uniform(*radius)
        # lesion centre inside the organ, well away from its rim
        u = rng.normal(size=3)
        u /= np.linalg.norm(u)
        c = centre + u * radii * rng.uniform(0.0, 0.55)
        d = np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2)
        les = (d <= rad) & organ & lesions
        label[les] = 2
        image[les] = 1.0 + cfg.organ_contrast + cfg.lesion_contrast
        total += 4.0 / 3.0 * np.pi * rad**3
    disease_voxels = int((label == 2).sum())
    for _ in range(extra_lesions):
        from voxseq.demo.qtl import QTL_LESION_RADIUS_MM

        u = extra_rng.normal(size=3)
        u /= np.linalg.norm(u)
        c = centre + u * radii * extra_rng.uniform(0.6, 0.85)
        d = np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2)
        les = (d <= QTL_LESION_RADIUS_MM) & organ & lesions
        label[les] = 2
        image[les] = 1.0 + cfg.organ_contrast + cfg.lesion_contrast
    return image, label, disease_voxels


def ghosting(image: np.ndarray, level: float = GHOST_LEVEL, axis: int = 1) -> np.ndarray:
    """Magnitude image with an N/2 ghost of ``image`` along the phase-encoding ``axis``.

    Every odd k-space line along ``axis`` is multiplied by ``exp(i phi)`` with
    ``phi = 2 arcsin(level)``; the image becomes ``cos(phi/2) x`` plus ``sin(phi/2)`` times
    ``x`` shifted by half the field of view, in quadrature, so its magnitude is
    ``sqrt(cos² x² + sin² x_shifted²)``: overlapping body on body keeps its intensity and the
    ghost shows mostly in the background.
    """
    phi = 2.0 * np.arcsin(level)
    shape = [1] * image.ndim
    shape[axis] = image.shape[axis]
    lines = np.arange(image.shape[axis]).reshape(shape)
    error = np.where(lines % 2 == 1, np.exp(1j * phi), 1.0)
    kspace = np.fft.fft(image, axis=axis) * error
    return np.abs(np.fft.ifft(kspace, axis=axis)).astype(np.float32)


def invert_contrast(image: np.ndarray) -> np.ndarray:
    """Mirror the intensities inside the subject (``image > 0``); background stays 0.

    The brightest tissue becomes the darkest and vice versa, within the same range.
    """
    inside = image > 0
    if not inside.any():
        return image
    lo, hi = float(image[inside].min()), float(image[inside].max())
    return np.where(inside, lo + hi - image, 0.0).astype(np.float32)


def make_subject(
    seed: int,
    index: int,
    cfg: ImagingDemoConfig,
    corruption: str | None = None,
    extra_channels: tuple[str, ...] = (),
    lesions: bool = True,
    qtl_dosage: int = 0,
) -> dict:
    """Draw one subject: arrays in storage orientation plus its affine and metadata.

    Parameters
    ----------
    corruption
        ``None`` or one of ``CORRUPTIONS`` (see the module docstring); only the image changes.
    extra_channels
        Names in ``EXTRA_CONTRASTS``: further images of the same anatomy on the same grid
        (``extra``), with the same bias field and scanner scaling and their own noise, drawn
        from ``[seed, 11, index, k]`` (the first image does not change with them). A
        corruption applies to the first image only (one bad series).
    lesions
        False: no lesion (label 2) anywhere; everything else as with lesions.
    qtl_dosage
        ALT alleles of the planted lesion QTL (:mod:`voxseq.demo.qtl`): ``QTL_LESIONS`` extra
        small lesions each, from the subject's own stream; 0 changes nothing. The extra
        lesions are in the image and the label but not in the class.

    Returns
    -------
    dict
        ``image``, ``extra``, ``label`` (arrays in storage orientation), ``affine``,
        ``scanner``, ``orientation`` and ``class``: ``high_burden`` where the volume of the
        subject's disease lesions (those drawn from ``[seed, 1, index]``, before the QTL's
        extra ones are painted) is at least ``cfg.burden_threshold_mm3``, else ``low_burden``.
        So the class does not depend on the genotype.
    """
    if corruption is not None and corruption not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {corruption!r}; one of {CORRUPTIONS}")
    rng = np.random.default_rng([seed, 1, index])
    scanner = cfg.scanners[index % len(cfg.scanners)]
    orient = cfg.orientations[int(rng.integers(len(cfg.orientations)))]
    spacing = np.array(
        [
            rng.uniform(*cfg.inplane_spacing),
            rng.uniform(*cfg.inplane_spacing),
            rng.uniform(*cfg.slice_spacing),
        ]
    )
    shape = np.maximum(np.round(np.array(cfg.fov_mm) / spacing).astype(int), cfg.min_shape)
    origin = -(shape - 1) * spacing / 2.0
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    idx = np.indices(shape, dtype=np.float32)
    coords = idx * spacing[:, None, None, None].astype(np.float32) + origin[:, None, None, None]
    heavy = bool(np.random.default_rng([seed, 5, index]).random() < cfg.heavy_fraction)
    from voxseq.demo.qtl import QTL_LESIONS, qtl_lesion_rng

    image, label, disease_voxels = phantom(rng, coords, cfg, heavy, lesions,
                                           QTL_LESIONS * qtl_dosage, qtl_lesion_rng(seed, index))
    body = image > 0
    if corruption == "inverted_contrast":
        image = invert_contrast(image)
    bias = gaussian_filter(rng.normal(size=(4, 4, 4)), 1.0)
    bias = 1.0 + 0.1 * bias / (np.abs(bias).max() + 1e-6)
    from scipy.ndimage import zoom

    field_ = zoom(bias, np.array(shape) / 4.0, order=1)[: shape[0], : shape[1], : shape[2]]
    image = image * field_
    if corruption == "motion_ghosting":
        image = ghosting(image)
    image = image + rng.normal(0.0, scanner.noise, size=shape)
    image = (image * scanner.scale + scanner.offset).astype(np.float32)
    extra = {}
    for k, name in enumerate(extra_channels):
        c_body, c_organ, c_lesion = EXTRA_CONTRASTS[name]
        tissue = np.where(label == 2, c_lesion, np.where(label == 1, c_organ, c_body)) * body
        noise = np.random.default_rng([seed, 11, index, k]).normal(0.0, scanner.noise, shape)
        extra[name] = ((tissue * field_ + noise) * scanner.scale + scanner.offset).astype(
            np.float32
        )
    # the class: the disease lesions' burden, measured before the QTL's extra lesions are
    # painted, so a subject's class does not depend on its genotype (see voxseq.demo.qtl)
    lesion_mm3 = float(disease_voxels * np.prod(spacing))
    klass = "high_burden" if lesion_mm3 >= cfg.burden_threshold_mm3 else "low_burden"
    ornt = ornt_transform(axcodes2ornt(("R", "A", "S")), axcodes2ornt(tuple(orient)))
    stored_affine = affine @ inv_ornt_aff(ornt, shape)
    return {
        "image": apply_orientation(image, ornt),
        "extra": {name: apply_orientation(v, ornt) for name, v in extra.items()},
        "label": apply_orientation(label, ornt),
        "affine": stored_affine,
        "scanner": scanner,
        "orientation": orient,
        "class": klass,
    }


def write_subject(
    subject: dict, image_path: Path, label_path: Path | None, extra_paths: dict | None = None
) -> None:
    """Write a subject's image (scanner dtype) and label (uint8) as NIfTI, atomically.

    ``label_path`` ``None``: the image only. ``extra_paths``: name -> path of each further
    image (``subject["extra"]``).
    """
    scanner: Scanner = subject["scanner"]
    todo = []
    images = [(subject["image"], image_path)]
    images += [(subject["extra"][n], p) for n, p in (extra_paths or {}).items()]
    for data, path in images:
        if scanner.dtype == "int16":
            data = np.clip(np.round(data), -32768, 32767).astype(np.int16)
        todo.append((data, path))
    if label_path is not None:
        todo.append((subject["label"].astype(np.uint8), label_path))
    for arr, path in todo:
        img = nib.Nifti1Image(arr, subject["affine"])
        img.header.set_xyzt_units("mm")
        img.set_qform(subject["affine"], code=1)
        img.set_sform(subject["affine"], code=1)
        with atomic_path(path) as tmp:
            nib.save(img, tmp)


def generate_imaging(
    outdir: Path,
    subjects: list[str],
    seed: int,
    cfg: ImagingDemoConfig | None = None,
    corruptions: dict[str, str] | None = None,
    channels: int = 1,
    missing: Mapping[str, Sequence[str]] | None = None,
    lesion_free: Collection[str] = (),
    qtl_dosages: Mapping[str, int] | None = None,
) -> dict[str, dict[str, str]]:
    """Write image + label NIfTI for each subject id into ``outdir/imaging``.

    Parameters
    ----------
    subjects
        Subject ids; subject ``i`` is drawn from ``[seed, 1, i]``.
    corruptions
        subject -> one of ``CORRUPTIONS``: that subject's image is corrupted and no label file
        is written (a broken, unannotated scan).
    channels
        Images per subject (:func:`demo_channel_names`): the further ones are written as
        ``<subject>_<name>.nii.gz`` and returned as ``image_<name>``.
    missing
        subject -> further channel names (e.g. ``["t2"]``) that subject lacks: their files are
        not written and their ``image_<name>`` entries are empty (a missing sequence, for
        synthesis). Off by default.
    lesion_free
        Subjects drawn without lesions (:func:`make_subject` ``lesions=False``). Off by default.
    qtl_dosages
        subject -> ALT dosage of the planted lesion QTL (:func:`make_subject` ``qtl_dosage``);
        a subject not in it carries none.

    Returns
    -------
    dict
        subject -> {"image": path, "label": path, "class": str, "batch": scanner, and
        "image_<name>": path per further image} with paths relative to ``outdir``
        (``label`` empty for a corrupted subject).
    """
    extra = tuple(demo_channel_names(channels)[1:])
    cfg = cfg or ImagingDemoConfig()
    corruptions = corruptions or {}
    (outdir / "imaging").mkdir(parents=True, exist_ok=True)
    out = {}
    missing = missing or {}
    unknown = {s: list(c) for s, c in missing.items() if set(c) - set(extra)}
    if unknown:
        raise ValueError(f"demo missing channels {unknown}: not among the further ones {extra}")
    for i, sid in enumerate(subjects):
        subj = make_subject(seed, i, cfg, corruptions.get(sid), extra, sid not in lesion_free,
                            (qtl_dosages or {}).get(sid, 0))
        files = imaging_files(sid, extra)
        image = Path(files["image"])
        label = None if sid in corruptions else Path(files["label"])
        others = {n: Path(files[f"image_{n}"]) for n in extra if n not in missing.get(sid, ())}
        write_subject(
            subj,
            outdir / image,
            outdir / label if label else None,
            {n: outdir / p for n, p in others.items()},
        )
        out[sid] = {
            "image": str(image),
            **{f"image_{n}": str(others[n]) if n in others else "" for n in extra},
            "label": str(label or ""),
            "class": subj["class"],
            "batch": subj["scanner"].name,
        }
    return out
