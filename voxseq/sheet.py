"""voxseq-sheet: write a sample sheet for a BIDS dataset or a folder of files.

``voxseq-sheet bids DATASET`` gives one row per subject (and session: ``sub-01_ses-1``), the
``image`` from one suffix (``T1w``), further suffixes as ``image_<name>`` channels, labels from a
derivatives folder, and ``participants.tsv`` columns as ``class`` or covariates.
``voxseq-sheet scan FOLDER`` pairs files by subject id with glob patterns (images, labels,
BAM/CRAM with their index, VCF with its index). Both list what they could not pair (a subject
missing a file is left out of the sheet and named, never dropped in silence), write the sheet
atomically, check it with :func:`voxseq.io.sheet.read_sheet` and print the config lines to use
it. Run as ``voxseq-sheet`` or ``python -m voxseq.sheet``.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from voxseq import VoxseqError
from voxseq.io.atomic import read_tsv, write_tsv
from voxseq.io.sheet import COLUMNS, channel_columns, read_sheet

log = logging.getLogger(__name__)

NIFTI = (".nii.gz", ".nii")
# the subject id of a path (relative to the scanned folder): the file name's leading token
DEFAULT_SUBJECT_RE = r"(?:^|/)([A-Za-z0-9][A-Za-z0-9-]*)[^/]*$"
COVARIATES = ("age", "sex")
INDEX_SUFFIXES = {".bam": (".bai",), ".cram": (".crai",), ".gz": (".tbi", ".csi")}


def column_name(name: str) -> str:
    """A channel column for a BIDS suffix or a user's name: ``FLAIR`` -> ``image_flair``."""
    clean = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")
    return f"image_{clean}"


def _entities(name: str) -> tuple[dict[str, str], str] | None:
    """BIDS entities and suffix of a NIfTI file name (None: not a NIfTI)."""
    stem = next((name[: -len(e)] for e in NIFTI if name.endswith(e)), None)
    if stem is None:
        return None
    *pairs, suffix = stem.split("_")
    ents = dict(p.split("-", 1) for p in pairs if "-" in p)
    return ents, suffix


def _bids_files(root: Path) -> dict[str, dict[str, list[Path]]]:
    """``{"sub-01_ses-1": {suffix: [files]}}`` for the NIfTI files of ``root``'s subjects."""
    out: dict[str, dict[str, list[Path]]] = {}
    for path in sorted(root.glob("sub-*/**/*.nii*")):
        parsed = _entities(path.name)
        if parsed is None or "sub" not in parsed[0]:
            continue
        ents, suffix = parsed
        key = f"sub-{ents['sub']}" + (f"_ses-{ents['ses']}" if "ses" in ents else "")
        out.setdefault(key, {}).setdefault(suffix, []).append(path)
    return out


def _one(files: list[Path] | None, key: str, what: str, problems: list[str]) -> Path | None:
    if not files:
        return None
    if len(files) > 1:
        problems.append(
            f"{key}: {len(files)} {what} files, expected one: " + ", ".join(f.name for f in files)
        )
        return None
    return files[0]


def bids_rows(
    dataset: Path,
    image: str = "T1w",
    channels: Sequence[str] = (),
    label: str = "dseg",
    derivatives: str | None = None,
    class_column: str | None = None,
    covariates: bool = False,
) -> tuple[list[dict[str, str]], list[str]]:
    """Sheet rows for a BIDS dataset, and the problems found (subjects left out, and why).

    Parameters
    ----------
    dataset
        The BIDS root (with ``dataset_description.json``).
    image, channels
        The suffix read as ``image`` and those read as ``image_<suffix lowercased>``.
    label, derivatives
        Labels: files with suffix ``label`` under ``derivatives/<derivatives>`` (None: under
        any folder of ``derivatives/``). A subject without one has an empty ``label``.
    class_column
        A ``participants.tsv`` column written as ``class``.
    covariates
        Also write ``age``, ``sex`` and the other ``participants.tsv`` columns as
        ``covar_<name>``.
    """
    dataset = Path(dataset)
    if not (dataset / "dataset_description.json").is_file():
        raise VoxseqError(f"BIDS dataset {dataset}: no dataset_description.json (not a BIDS root)")
    found = _bids_files(dataset)
    deriv_root = dataset / "derivatives" / (derivatives or "")
    labels = _bids_files_under(deriv_root) if deriv_root.is_dir() else {}
    people = _participants(dataset / "participants.tsv")
    rows, problems = [], []
    subjects = {p.name for p in dataset.glob("sub-*") if p.is_dir()} | set(people)
    for sub in sorted(subjects - {k.split("_")[0] for k in found}):
        problems.append(f"{sub}: no NIfTI file at all (participants.tsv or its folder): left out")
    for key in sorted(found):
        by_suffix = found[key]
        row = {"subject": key}
        files = [("image", image), *((column_name(c), c) for c in channels)]
        missing = [s for _, s in files if not by_suffix.get(s)]
        if missing:
            problems.append(f"{key}: no {', '.join(missing)} file: left out of the sheet")
            continue
        picked = {col: _one(by_suffix.get(s), key, s, problems) for col, s in files}
        if any(p is None for p in picked.values()):
            continue
        row.update({col: str(p) for col, p in picked.items()})
        lab = _one(labels.get(key, {}).get(label), key, f"{label} label", problems)
        row["label"] = str(lab) if lab else ""
        row.update(_person_columns(people.get(key.split("_")[0], {}), class_column, covariates))
        rows.append(row)
    return rows, problems


def _bids_files_under(deriv: Path) -> dict[str, dict[str, list[Path]]]:
    """:func:`_bids_files` of a derivatives folder or of each of its pipelines."""
    if any(deriv.glob("sub-*")):
        return _bids_files(deriv)
    merged: dict[str, dict[str, list[Path]]] = {}
    for pipeline in sorted(p for p in deriv.iterdir() if p.is_dir()):
        for key, by_suffix in _bids_files(pipeline).items():
            for suffix, files in by_suffix.items():
                merged.setdefault(key, {}).setdefault(suffix, []).extend(files)
    return merged


def _participants(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    return {r["participant_id"]: r for r in read_tsv(path) if r.get("participant_id")}


def _person_columns(person: dict[str, str], class_column: str | None, covariates: bool) -> dict:
    out = {}
    values = {
        k: ("" if (v or "").strip() == "n/a" else (v or "").strip()) for k, v in person.items()
    }
    if class_column:
        out["class"] = values.get(class_column, "")
    if covariates:
        for name, value in values.items():
            if name in ("participant_id", class_column):
                continue
            out[name if name in COVARIATES else f"covar_{column_name(name)[6:]}"] = value
    return out


def _index_of(path: Path) -> Path | None:
    """The index beside a BAM (``.bai``), CRAM (``.crai``) or bgzipped VCF (``.tbi``/``.csi``)."""
    for ext in INDEX_SUFFIXES.get(path.suffix, ()):
        for cand in (Path(str(path) + ext), path.with_suffix(ext)):
            if cand.is_file():
                return cand
    return None


def scan_rows(
    folder: Path,
    patterns: dict[str, str],
    subject_re: str = DEFAULT_SUBJECT_RE,
) -> tuple[list[dict[str, str]], list[str]]:
    """Sheet rows for the files under ``folder``, paired by subject id, and the problems found.

    Parameters
    ----------
    folder
        Searched with each glob pattern (``**`` for any depth), relative to it.
    patterns
        Sheet column -> glob pattern: ``image``, ``image_<name>``, ``label``, ``bam`` (BAM or
        CRAM; an index ``.bai``/``.crai`` beside it is required), ``vcf`` (bgzipped; ``.tbi``
        or ``.csi`` required).
    subject_re
        Regular expression searched in each file's path relative to ``folder``; its first
        group is the subject id (default: the file name's leading letters, digits and ``-``).
    """
    from voxseq.io.sheet import SUBJECT_PATTERN

    folder, rx, valid = Path(folder), re.compile(subject_re), re.compile(SUBJECT_PATTERN)
    if not folder.is_dir():
        raise VoxseqError(f"folder {folder} not found")
    grouped: dict[str, dict[str, list[Path]]] = {}
    problems, matched = [], set()
    for col, pattern in patterns.items():
        for path in sorted(p for p in folder.glob(pattern) if p.is_file()):
            rel = path.relative_to(folder).as_posix()
            matched.add(path)
            m = rx.search(rel)
            if not m or not valid.match(m.group(1)):
                problems.append(
                    f"{rel}: no subject id ({subject_re!r} gives "
                    f"{m.group(1) if m else 'no match'!r}): not paired"
                )
                continue
            grouped.setdefault(m.group(1), {}).setdefault(col, []).append(path)
    rows = []
    for sid in sorted(grouped):
        row = _scan_row(sid, grouped[sid], [c for c in patterns if c.startswith("image")], problems)
        if row:
            rows.append(row)
    data = (*NIFTI, ".bam", ".cram", ".vcf.gz", ".bcf")
    left = sorted(p for p in folder.rglob("*") if p.name.endswith(data) and p not in matched)
    if left:
        names = ", ".join(p.relative_to(folder).as_posix() for p in left[:10])
        problems.append(
            f"{len(left)} data file(s) matched no pattern: {names}"
            + (" ..." if len(left) > 10 else "")
        )
    return rows, problems


def _scan_row(
    sid: str, files: dict[str, list[Path]], image_cols: list[str], problems: list[str]
) -> dict | None:
    """One subject's row, or None (the problem listed) when its files do not pair."""
    before = len(problems)
    picked = {col: _one(paths, sid, col, problems) for col, paths in files.items()}
    if len(problems) > before:
        return None
    imaging = [c for c in ("label", *image_cols) if c in picked]
    if imaging:
        missing = [c for c in image_cols if c not in picked]
        if missing:
            problems.append(
                f"{sid}: has {', '.join(imaging)} but no {', '.join(missing)} file: "
                "left out of the sheet"
            )
            return None
    if "image" not in picked and "bam" not in picked:
        problems.append(f"{sid}: only {', '.join(picked)} (no image and no BAM/CRAM): left out")
        return None
    for col in ("bam", "vcf"):
        if col in picked and _index_of(picked[col]) is None:
            want = "/".join(INDEX_SUFFIXES.get(picked[col].suffix, (".bai/.crai/.tbi",)))
            problems.append(
                f"{sid}: {col} {picked[col].name} has no index ({want}) beside it: "
                "left out of the sheet (samtools index / tabix -p vcf)"
            )
            return None
    return {"subject": sid, **{c: str(p) for c, p in picked.items()}}


def sheet_columns(rows: Sequence[dict[str, str]]) -> list[str]:
    """The columns to write: the sheet's own order, ``image_<name>`` after ``image``, only those
    some row fills (``subject`` always), covariates (``age``, ``sex``, ``covar_*``) last."""
    keys = {k for r in rows for k, v in r.items() if v}
    chans = sorted({c for r in rows for c in channel_columns(r)}, key=_first_seen(rows))
    covars = [c for c in (*COVARIATES, *sorted(k for k in keys if k.startswith("covar_")))]
    ordered = ["subject", "image", *chans, *[c for c in COLUMNS[2:]], *covars]
    return [c for c in ordered if c == "subject" or c in keys]


def _first_seen(rows: Sequence[dict[str, str]]):
    order: dict[str, int] = {}
    for r in rows:
        for k in r:
            order.setdefault(k, len(order))
    return order.__getitem__


def write_checked_sheet(out: Path, rows: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """Write ``rows`` to ``out`` (paths relative to its folder, atomically) and check it with
    :func:`voxseq.io.sheet.read_sheet` (covariate columns included); return what it reads.
    """
    if not rows:
        raise VoxseqError(f"sample sheet {out}: no subject could be paired; nothing written")
    out = Path(out).absolute()
    columns = sheet_columns(rows)
    rel = [
        {k: _relative(v, out.parent) if k in _path_columns(columns) else v for k, v in r.items()}
        for r in rows
    ]
    write_tsv(out, rel, columns)
    return read_sheet(out)


def _path_columns(columns: Sequence[str]) -> set[str]:
    return {"image", "label", "bam", "vcf", *channel_columns(columns)}


def _relative(value: str, base: Path) -> str:
    return os.path.relpath(value, base) if value else value


def config_lines(out: Path, rows: Sequence[dict[str, str]]) -> list[str]:
    """YAML lines of a config that runs this sheet (the rest from config/config.yaml)."""
    imaging = any(r.get("image") for r in rows)
    genomics = any(r.get("bam") for r in rows)
    lines = [
        "# my_cohort.yaml, then: snakemake --cores 2 --configfile my_cohort.yaml",
        f"samples: {Path(out).absolute()}",
        "demo: {enabled: false}",
        f"imaging: {{enabled: {str(imaging).lower()}}}",
    ]
    if genomics:
        lines += [
            "genomics:",
            "  enabled: true",
            "  reference: /path/to/reference.fa  # the FASTA the reads were aligned to",
        ]
    else:
        lines.append("genomics: {enabled: false}")
    return lines


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="voxseq-sheet", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bids", help="one row per subject (and session) of a BIDS dataset")
    b.add_argument("dataset", type=Path)
    b.add_argument("--image", default="T1w", help="suffix read as 'image' (default T1w)")
    b.add_argument(
        "--channel",
        action="append",
        default=[],
        metavar="SUFFIX",
        help="further suffix, as image_<suffix lowercased> (repeat: FLAIR, T2w)",
    )
    b.add_argument("--label", default="dseg", help="label suffix in derivatives (default dseg)")
    b.add_argument("--derivatives", help="the derivatives pipeline holding labels (default any)")
    b.add_argument("--class-column", help="participants.tsv column written as 'class'")
    b.add_argument(
        "--covariates",
        action="store_true",
        help="write participants.tsv columns as age, sex, covar_<name>",
    )
    s = sub.add_parser("scan", help="pair files under a folder by subject id")
    s.add_argument("folder", type=Path)
    s.add_argument("--image", help="glob of the images, e.g. '**/*_T1w.nii.gz'")
    s.add_argument(
        "--channel",
        action="append",
        default=[],
        metavar="NAME=GLOB",
        help="further images as image_<name> (repeat)",
    )
    s.add_argument("--label", help="glob of the labels")
    s.add_argument("--bam", help="glob of the BAM/CRAM files (indexed)")
    s.add_argument("--vcf", help="glob of the bgzipped VCF files (indexed)")
    s.add_argument(
        "--subject-regex",
        default=DEFAULT_SUBJECT_RE,
        help="regex on the path under FOLDER; group 1 is the subject id",
    )
    for q in (b, s):
        q.add_argument("-o", "--output", type=Path, default=Path("samples.tsv"))
        q.add_argument(
            "--strict",
            action="store_true",
            help="write nothing and exit 1 when anything could not be paired",
        )
    return p


def _scan_patterns(args: argparse.Namespace) -> dict[str, str]:
    patterns = {"image": args.image} if args.image else {}
    for item in args.channel:
        name, sep, glob = item.partition("=")
        if not sep or not glob:
            raise VoxseqError(f"--channel {item!r}: expected NAME=GLOB")
        patterns[column_name(name)] = glob
    patterns.update({c: getattr(args, c) for c in ("label", "bam", "vcf") if getattr(args, c)})
    if not patterns:
        raise VoxseqError("scan: give at least one of --image, --bam (and the other patterns)")
    return patterns


def main(argv: Sequence[str] | None = None) -> int:
    """The ``voxseq-sheet`` command: exit status 0, or 1 with the reason on stderr."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = _parser().parse_args(argv)
    try:
        if args.command == "bids":
            rows, problems = bids_rows(
                args.dataset,
                args.image,
                args.channel,
                args.label,
                args.derivatives,
                args.class_column,
                args.covariates,
            )
        else:
            rows, problems = scan_rows(args.folder, _scan_patterns(args), args.subject_regex)
        for problem in problems:
            log.warning("not paired: %s", problem)
        if problems and args.strict:
            raise VoxseqError(f"{len(problems)} problem(s) above; --strict: nothing written")
        checked = write_checked_sheet(args.output, rows)
    except VoxseqError as exc:
        log.error("voxseq-sheet: %s", exc)
        return 1
    log.info(
        "%s: %d subject(s), columns %s; %d not paired",
        args.output,
        len(checked),
        sheet_columns(rows),
        len(problems),
    )
    sys.stdout.write("\n".join(config_lines(args.output, rows)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
