"""A small, valid BIDS dataset for tests: sessions, T1w + FLAIR, a derivatives label.

:func:`make_bids_dataset` writes it (deterministically from ``seed``) and returns what it wrote,
so a test can check a sheet built from it, and an end-to-end run can train on it: each image
holds a bright ellipsoid (label 1) with a brighter core (label 2) on the label's grid.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

PARTICIPANTS = {  # participant_id: (age, sex, group)
    "01": ("34", "F", "control"),
    "02": ("51", "M", "patient"),
    "03": ("47", "F", "patient"),
    "04": ("n/a", "M", "control"),
}


def _volumes(rng: np.random.Generator, shape: tuple[int, int, int]):
    """(T1w-like, FLAIR-like, label) arrays on one grid."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    centre = rng.uniform(-0.2, 0.2, 3)[:, None, None, None]
    r = np.sqrt((((grid - centre) / np.array([0.6, 0.5, 0.7])[:, None, None, None]) ** 2).sum(0))
    label = np.where(r < 0.4, 2, np.where(r < 1.0, 1, 0)).astype(np.uint8)
    noise = rng.normal(0, 5, (2, *shape))
    t1 = (np.array([20.0, 100.0, 160.0])[label] + noise[0]).astype(np.float32)
    flair = (np.array([10.0, 60.0, 200.0])[label] + noise[1]).astype(np.float32)
    return t1, flair, label


def _save(path: Path, data: np.ndarray, affine: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    nib.save(img, str(path))
    return str(path)


def make_bids_dataset(
    root: Path,
    subjects: tuple[str, ...] = ("01", "02", "03"),
    sessions: tuple[str, ...] = ("1", "2"),
    shape: tuple[int, int, int] = (24, 24, 16),
    missing: tuple[tuple[str, str, str], ...] = (),
    labels: bool = True,
    seed: int = 0,
) -> dict:
    """Write a BIDS dataset under ``root``; return ``{"files": [...], "sessions": {...}}``.

    Parameters
    ----------
    subjects, sessions
        Labels without their ``sub-`` / ``ses-`` prefix (``sessions=()``: no session level).
    missing
        ``(subject, session, suffix)`` files left out (``suffix`` ``T1w``, ``FLAIR`` or ``dseg``).
    labels
        Write ``derivatives/manual/.../*_dseg.nii.gz`` (0 background, 1 organ, 2 lesion).

    Returns
    -------
    dict
        ``files``: every file written, relative to ``root`` with a leading ``/`` (as the BIDS
        validator takes them); ``sessions``: ``{"sub-01_ses-1": {"T1w": path, "FLAIR": path,
        "dseg": path}}`` (absolute paths of the files written).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    affine = np.diag([1.2, 1.0, 2.0, 1.0])
    affine[:3, 3] = [-14, -12, -16]
    written: dict[str, dict[str, str]] = {}
    _json(root / "dataset_description.json", {"Name": "voxseq test", "BIDSVersion": "1.9.0"})
    (root / "README").write_text("A synthetic dataset written by the voxseq tests.\n")
    rows = ["participant_id\tage\tsex\tgroup"]
    rows += [f"sub-{s}\t" + "\t".join(PARTICIPANTS[s]) for s in subjects if s in PARTICIPANTS]
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    _json(root / "participants.json", {"age": {"Description": "age", "Units": "year"}})
    deriv = root / "derivatives" / "manual"
    if labels:
        _json(
            deriv / "dataset_description.json",
            {"Name": "manual labels", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
             "GeneratedBy": [{"Name": "Manual"}]},
        )  # fmt: skip
    for sub in subjects:
        for ses in sessions or ("",):
            key = f"sub-{sub}" + (f"_ses-{ses}" if ses else "")
            rel = Path(f"sub-{sub}") / (f"ses-{ses}" if ses else "") / "anat"
            t1, flair, label = _volumes(rng, shape)
            files = {}
            for suffix, data, base in (
                ("T1w", t1, root),
                ("FLAIR", flair, root),
                ("dseg", label, deriv),
            ):
                if (sub, ses, suffix) in missing or (suffix == "dseg" and not labels):
                    continue
                files[suffix] = _save(base / rel / f"{key}_{suffix}.nii.gz", data, affine)
                if suffix != "dseg":
                    _json(base / rel / f"{key}_{suffix}.json", {"MagneticFieldStrength": 3})
            written[key] = files
    return {
        "files": sorted(
            "/" + p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
        ),
        "sessions": written,
    }


def _json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")
