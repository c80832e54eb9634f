"""DICOM series to NIfTI with dcm2niix: one volume per subject and sheet column.

:func:`convert_series` runs dcm2niix (an argument list, never a shell string) on a series folder,
or on a study folder with a series chosen by a pattern over SeriesDescription / ProtocolName,
into a temporary folder beside the output; checks what came out; and renames the one volume onto
the output. Its JSON record keeps dcm2niix's sidecar (acquisition parameters), the series found
and what dcm2niix warned about (missing or uneven slices, gantry tilt, several series, a
localiser), each also logged.

Personal data: dcm2niix runs with its BIDS anonymisation (``-ba y``: no names, birth dates or
acquisition dates in the sidecar) and an empty NIfTI comment (``-c ""``: the image comments are
not copied into ``aux_file``); the sidecar kept is scrubbed again (:func:`scrub_sidecar`:
institution, physicians, operators, station, serial and accession numbers, dates, comments).
Output file names carry only the series number and SeriesInstanceUID, never a name.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from voxseq import VoxseqError
from voxseq.io.atomic import atomic_path, remove_stale_temporaries, write_json

log = logging.getLogger(__name__)

# sidecar keys that may identify a person or a visit (dcm2niix's -ba y already drops names,
# birth dates and acquisition dates; these are what it keeps or what other versions add)
PERSONAL_KEYS = re.compile(
    r"Patient|Physician|Operator|Institution|StationName|SerialNumber|Accession|Birth|Date|"
    r"Address|StudyID|StudyInstanceUID|Comments|Performing|Referring|RequestingService",
    re.IGNORECASE,
)
# geometry, not a person: kept although "Patient" is in their names
GEOMETRY_KEYS = {"ImageOrientationPatientDICOM", "ImagePositionPatientDICOM", "PatientPosition"}
LOCALISER = re.compile(r"locali[sz]er|scout|survey|topogram|3[-_ ]?plane", re.IGNORECASE)
# a slice missing or spaced unevenly: the volume's grid would be wrong
UNEVEN = re.compile(r"Missing images|Interslice distance varies|slices not equidistant", re.I)
# dcm2niix's output name: v<series number>_<SeriesInstanceUID><suffixes>.nii.gz
STANDARD_AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # ImageOrientationPatient of a plain axial CT
_NAME = re.compile(r"^v(?P<number>-?\d+)_(?P<uid>[0-9.]*?)(?P<suffix>(_[A-Za-z].*)?)$")
_CONVERT = re.compile(r"^Convert \d+ DICOM as (?P<path>.+) \((?P<dims>[0-9x]+)\)$")


@dataclass
class SeriesFound:
    """One volume dcm2niix wrote: ``nifti`` with its scrubbed ``sidecar`` and its messages."""

    nifti: Path
    number: int | None
    uid: str
    suffix: str
    sidecar: dict
    warnings: list[str] = field(default_factory=list)
    variants: list[Path] = field(default_factory=list)  # _Eq_1 (equalised), _Tilt_1 (tilt)
    shape: tuple[int, ...] = ()

    def describe(self) -> dict:
        """The series as recorded and reported (no personal data)."""
        return {
            "series_number": self.number,
            "series_uid": self.uid,
            "series_description": self.sidecar.get("SeriesDescription", ""),
            "protocol_name": self.sidecar.get("ProtocolName", ""),
            "image_type": self.sidecar.get("ImageType", []),
            "file_suffix": self.suffix,
            "shape": list(self.shape),
        }

    def label(self) -> str:
        d = self.describe()
        name = d["series_description"] or d["protocol_name"] or "(no description)"
        return f"series {self.number} {name!r}{self.suffix} {'x'.join(map(str, self.shape))}"


def dcm2niix_binary() -> str:
    """The dcm2niix executable: the PyPI wheel's (package ``dcm2niix``), else one on PATH."""
    try:
        import dcm2niix  # the PyPI wheel ships the binary

        if Path(dcm2niix.bin).is_file():
            return str(dcm2niix.bin)
    except ImportError:
        pass
    found = shutil.which("dcm2niix")
    if not found:
        raise VoxseqError(
            "dcm2niix not found: install the dcm2niix package (pip install dcm2niix, conda "
            "install -c conda-forge dcm2niix, or apt install dcm2niix)"
        )
    return found


def dcm2niix_args(folder: Path, outdir: Path, compress: bool = True) -> list[str]:
    """dcm2niix's arguments: anonymised sidecar, no comment, names without personal data."""
    return [
        "-b", "y", "-ba", "y", "-c", "",
        "-z", "y" if compress else "n",
        "-f", "v%s_%j",
        "-w", "2",
        "-o", str(outdir),
        str(folder),
    ]  # fmt: skip


def scrub_sidecar(sidecar: dict) -> dict:
    """``sidecar`` without keys that may identify a person or a visit (:data:`PERSONAL_KEYS`)."""
    return {k: v for k, v in sidecar.items() if k in GEOMETRY_KEYS or not PERSONAL_KEYS.search(k)}


def run_dcm2niix(
    folder: Path, outdir: Path, subject: str, compress: bool = True, timeout: float = 3600
) -> tuple[int, list[str]]:
    """Run dcm2niix on ``folder`` into ``outdir``; its exit status and output lines."""
    cmd = [dcm2niix_binary(), *dcm2niix_args(folder, outdir, compress)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise VoxseqError(
            f"subject {subject}: DICOM folder {folder}: dcm2niix ran past {timeout:g} s"
        ) from exc
    lines = [ln.strip() for ln in (res.stdout + "\n" + res.stderr).splitlines() if ln.strip()]
    return res.returncode, lines


def _is_message(line: str) -> bool:
    low = line.lower()
    return low.startswith(("warning", "error")) or "no valid dicom" in low or "<" in line


def collect_series(outdir: Path, lines: list[str]) -> list[SeriesFound]:
    """The volumes dcm2niix wrote into ``outdir``, each with the warnings printed before its
    ``Convert`` line (dcm2niix prints a series' warnings before converting it)."""
    import nibabel as nib

    pending: list[str] = []
    by_stem: dict[str, list[str]] = {}
    for line in lines:
        m = _CONVERT.match(line)
        if m:
            by_stem[Path(m["path"]).name] = pending
            pending = []
        elif _is_message(line):
            pending.append(line)
    niftis = sorted(p for p in outdir.iterdir() if p.name.endswith((".nii.gz", ".nii")))
    found: dict[str, SeriesFound] = {}
    variants = []
    for path in niftis:
        stem = path.name.removesuffix(".gz").removesuffix(".nii")
        base = re.sub(r"_(Eq|Tilt)_\d+$", "", stem)
        if base != stem:
            variants.append((base, path))
            continue
        m = _NAME.match(stem)
        sidecar_path = path.with_name(stem + ".json")
        sidecar = json.loads(sidecar_path.read_text()) if sidecar_path.is_file() else {}
        found[stem] = SeriesFound(
            nifti=path,
            number=int(m["number"]) if m else None,
            uid=m["uid"] if m else "",
            suffix=m["suffix"] if m else stem,
            sidecar=scrub_sidecar(sidecar),
            warnings=by_stem.get(stem, []),
            shape=tuple(int(s) for s in nib.load(str(path)).shape),
        )
    for base, path in variants:
        if base in found:
            found[base].variants.append(path)
    return list(found.values())


def select_series(
    found: list[SeriesFound], pattern: str | None, subject: str, folder: Path
) -> SeriesFound:
    """The one series matching ``pattern`` (a regular expression searched, case-insensitively,
    in SeriesDescription and ProtocolName; None: every series), else a VoxseqError listing the
    series found."""
    listed = "; ".join(s.label() for s in found) or "none"
    chosen = found
    if pattern:
        try:
            rx = re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise VoxseqError(
                f"subject {subject}: DICOM folder {folder}: series pattern {pattern!r} is not a "
                f"regular expression ({exc})"
            ) from exc
        chosen = [
            s
            for s in found
            if rx.search(s.sidecar.get("SeriesDescription", ""))
            or rx.search(s.sidecar.get("ProtocolName", ""))
        ]
    which = f"matching {pattern!r}" if pattern else "in it"
    if len(chosen) == 1:
        return chosen[0]
    if not chosen:
        raise VoxseqError(
            f"subject {subject}: DICOM folder {folder}: no volume {which}; series found: {listed}"
        )
    hint = "" if pattern else " (a study folder: choose one by its description, the series pattern)"
    raise VoxseqError(
        f"subject {subject}: DICOM folder {folder}: {len(chosen)} volumes {which}, expected "
        f"one{hint}: {'; '.join(s.label() for s in chosen)}"
    )


def _check_selected(s: SeriesFound, subject: str, folder: Path, min_slices: int) -> list[str]:
    """Refuse a volume with missing or uneven slices, or too few slices; return the warnings
    to keep (dcm2niix's, plus a localiser or gantry tilt noted)."""
    where = f"subject {subject}: DICOM folder {folder}: {s.label()}"
    uneven = [w for w in s.warnings if UNEVEN.search(w)]
    if uneven or any("_Eq_" in p.name for p in s.variants):
        raise VoxseqError(
            f"{where}: missing or unevenly spaced slices (dcm2niix: {' | '.join(uneven)}); a "
            "NIfTI volume needs evenly spaced slices: export the complete series"
        )
    slices = s.shape[2] if len(s.shape) > 2 else 1
    if slices < min_slices:
        raise VoxseqError(
            f"{where}: {slices} slice(s), fewer than {min_slices}: a single 2D image (a "
            "localiser, or one file of a series) is not a volume; give the folder holding the "
            "whole series"
        )
    notes = [f"{where}: dcm2niix: {w}" for w in s.warnings]
    image_type = " ".join(map(str, s.sidecar.get("ImageType", [])))
    text = f"{s.sidecar.get('SeriesDescription', '')} {s.sidecar.get('ProtocolName', '')}"
    if LOCALISER.search(text) or "LOCALIZER" in image_type.upper():
        notes.append(f"{where}: looks like a localiser/scout (ImageType {image_type!r})")
    return notes


def _check_tilt(s: SeriesFound, subject: str, folder: Path) -> None:
    """dcm2niix's gantry tilt correction is trusted for axial slices in the standard in-plane
    orientation (ImageOrientationPatient 1,0,0,0,1,0) only: with the rows reversed it was found
    to shear the wrong way (a point 10 mm off on a 15 degree tilt)."""
    iop = s.sidecar.get("ImageOrientationPatientDICOM")
    if iop is None or max(abs(a - b) for a, b in zip(iop, STANDARD_AXIAL, strict=True)) > 1e-3:
        raise VoxseqError(
            f"subject {subject}: DICOM folder {folder}: {s.label()}: gantry tilt with image "
            f"orientation {iop} (not the standard axial {list(STANDARD_AXIAL)}): dcm2niix's tilt "
            "correction is not trusted there; resample the series onto an orthogonal grid "
            "(e.g. in the scanner console or a DICOM viewer) and convert that"
        )


def convert_series(
    subject: str,
    folder: str | Path,
    out_image: str | Path,
    out_record: str | Path,
    column: str = "image",
    series: str | None = None,
    min_slices: int = 2,
    timeout: float = 3600,
) -> dict:
    """Convert one subject's DICOM series to ``out_image`` (NIfTI) and ``out_record`` (JSON).

    Parameters
    ----------
    subject, column
        The sheet's subject id and the column (``image``, ``image_<name>``) the volume is for.
    folder
        A series folder, or a study folder (searched 5 levels deep) with ``series`` choosing.
    out_image
        ``.nii.gz`` (compressed) or ``.nii``.
    series
        Regular expression searched (case-insensitive) in SeriesDescription and ProtocolName;
        None: the folder must yield exactly one volume.
    min_slices
        Fewer slices than this is refused (a 2D image is not a volume).

    Returns
    -------
    dict
        The record written to ``out_record``: ``subject``, ``column``, ``folder``, ``series``
        (number, SeriesInstanceUID, description, protocol, image type, shape), ``series_found``,
        ``warnings``, ``sidecar`` (dcm2niix's, scrubbed), ``dcm2niix_args``.

    Raises
    ------
    VoxseqError
        Naming the subject, the folder and the series found: no volume (no image data, or a
        file dcm2niix cannot read), several, missing or uneven slices, too few slices.
    """
    folder, out_image = Path(folder), Path(out_image)
    if not folder.is_dir():
        raise VoxseqError(f"subject {subject}: {column}: DICOM folder {folder} not found")
    compress = out_image.name.endswith(".gz")
    work_base = out_image.with_name(f"dcm2niix-{out_image.name}")  # not .tmp-<name>.*
    remove_stale_temporaries(work_base)
    out_image.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".tmp-{work_base.name}.", dir=out_image.parent) as wd:
        code, lines = run_dcm2niix(folder, Path(wd), subject, compress, timeout)
        found = collect_series(Path(wd), lines)
        if not found:
            said = " | ".join(ln for ln in lines if _is_message(ln)) or f"exit status {code}"
            raise VoxseqError(
                f"subject {subject}: {column}: DICOM folder {folder}: no volume (no image data "
                f"dcm2niix can read; dcm2niix: {said})"
            )
        chosen = select_series(found, series, subject, folder)
        warnings = _check_selected(chosen, subject, folder, min_slices)
        if len(found) > 1:
            warnings.append(
                f"subject {subject}: DICOM folder {folder}: {len(found)} volumes; {series!r} "
                f"chose {chosen.label()} (others: "
                f"{'; '.join(s.label() for s in found if s is not chosen)})"
            )
        tilted = [p for p in chosen.variants if "_Tilt_" in p.name]
        if tilted:
            _check_tilt(chosen, subject, folder)
        source = tilted[0] if tilted else chosen.nifti
        if tilted:
            warnings.append(
                f"subject {subject}: DICOM folder {folder}: {chosen.label()}: gantry tilt; "
                f"dcm2niix's tilt-corrected volume ({tilted[0].name}) used"
            )
        _check_readable(source, subject, column)
        for message in warnings:
            log.warning("%s", message)
        record = {
            "subject": subject,
            "column": column,
            "folder": str(folder),
            "series_pattern": series,
            "series": chosen.describe(),
            "series_found": [s.describe() for s in found],
            "warnings": warnings,
            "sidecar": chosen.sidecar,
            "dcm2niix_args": dcm2niix_args(folder, Path("<tmp>"), compress)[:-3],
            "tilt_corrected": bool(tilted),
        }
        with atomic_path(out_image) as tmp:
            os.replace(source, tmp)
    write_json(out_record, record)
    log.info("subject %s: %s from %s -> %s", subject, chosen.label(), folder, out_image)
    return record


def _check_readable(path: Path, subject: str, column: str) -> None:
    """The converted file loads as the pipeline's ingest loads it (header only for large ones)."""
    from voxseq.io.nifti import nifti_volumes

    nifti_volumes(path, subject, column)
