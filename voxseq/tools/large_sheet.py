"""Large synthetic sample sheets, for dry runs and scaling tests of the workflow.

A sheet of ``n`` subjects is written with one input file per subject and modality. By default
the files are empty placeholders: enough for ``snakemake -n`` (the sheet validator only checks
that they exist), not for a real run. Give ``templates`` (one real file per column, e.g. a demo
subject's image and BAM) to link every subject to it instead, so that a real run at scale is
possible; index files beside a template (``.bai``, ``.csi``, ``.tbi``, ``.fai``) are linked
too.

Command line::

    python -m voxseq.tools.large_sheet OUTDIR --subjects 2000 [--modalities imaging genomics]

writes ``OUTDIR/samples.tsv``, the files under ``OUTDIR/imaging`` and ``OUTDIR/genomics``, and
(with genomics) a small placeholder reference ``OUTDIR/reference.fa`` with its ``.fai``.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from voxseq.io.sheet import COLUMNS

log = logging.getLogger(__name__)

MODALITIES = ("imaging", "genomics")
#: Sheet columns written per modality, with the file name pattern under ``<outdir>/<modality>``.
FILE_COLUMNS: dict[str, dict[str, str]] = {
    "imaging": {"image": "{sid}_image.nii.gz", "label": "{sid}_label.nii.gz"},
    "genomics": {"bam": "{sid}.bam", "vcf": "{sid}.vcf.gz"},
}
#: Index files that travel with a data file (placeholders get them too).
INDEX_SUFFIXES: dict[str, tuple[str, ...]] = {"bam": (".bai",), "vcf": (".tbi",)}
_TEMPLATE_INDEXES = (".bai", ".csi", ".crai", ".tbi", ".fai")
#: Placeholder reference: two contigs, with a matching ``.fai``.
_REFERENCE = {"chr1": "ACGT" * 256, "chr2": "TTGCA" * 200}


def subject_ids(n: int, prefix: str = "sub") -> list[str]:
    """``n`` zero-padded subject ids: ``sub00001``, ``sub00002``, ...

    Raises
    ------
    ValueError
        ``n`` < 1 or a prefix that is not a valid subject-id start.
    """
    if n < 1:
        raise ValueError(f"number of subjects must be at least 1, got {n}")
    if not prefix or not (prefix[0].isalnum() and prefix.replace("_", "").isalnum()):
        raise ValueError(f"prefix {prefix!r}: use letters, digits and '_' only")
    width = max(5, len(str(n)))
    return [f"{prefix}{i:0{width}d}" for i in range(1, n + 1)]


def _place(path: Path, template: Path | None) -> None:
    """Create ``path`` as an empty file, or as a symlink to ``template``."""
    if template is None:
        path.touch()
        return
    if path.is_symlink() or path.exists():
        path.unlink()
    path.symlink_to(template.resolve())


def write_reference(path: str | os.PathLike) -> Path:
    """Write the small placeholder FASTA (and its ``.fai``) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fasta, fai, offset = [], [], 0
    for name, seq in _REFERENCE.items():
        header = f">{name}\n"
        lines = [seq[i : i + 60] for i in range(0, len(seq), 60)]
        offset += len(header)
        fai.append(f"{name}\t{len(seq)}\t{offset}\t60\t61\n")
        body = "".join(f"{line}\n" for line in lines)
        offset += len(body)
        fasta.append(header + body)
    path.write_text("".join(fasta))
    Path(f"{path}.fai").write_text("".join(fai))
    return path


def write_large_sheet(
    outdir: str | os.PathLike,
    n_subjects: int,
    modalities: Sequence[str] = MODALITIES,
    label_fraction: float = 0.5,
    prefix: str = "sub",
    templates: Mapping[str, str | os.PathLike] | None = None,
) -> Path:
    """Write a sample sheet of ``n_subjects`` and one input file per subject and column.

    Parameters
    ----------
    outdir
        Folder for ``samples.tsv`` and the files (created; existing files are replaced).
    n_subjects
        Number of subjects (rows).
    modalities
        Any of ``"imaging"`` (image + label columns) and ``"genomics"`` (bam + vcf columns).
    label_fraction
        Share of imaging subjects with a label file, spread evenly over the sheet.
    prefix
        Subject-id prefix (letters, digits, ``_``).
    templates
        Optional ``{column: existing file}``; every subject's file in that column becomes a
        symlink to it (with its index files). Columns without a template get empty files.

    Returns
    -------
    Path
        The sheet, ``<outdir>/samples.tsv``. Paths in it are relative to ``outdir``, so the
        folder can be moved.

    Raises
    ------
    ValueError
        Unknown modality or column, no modality, ``label_fraction`` outside [0, 1], or a
        template that does not exist.
    """
    modalities = list(dict.fromkeys(modalities))
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown or not modalities:
        raise ValueError(f"modalities {modalities}: choose one or more of {MODALITIES}")
    if not 0.0 <= label_fraction <= 1.0:
        raise ValueError(f"label_fraction must be within [0, 1], got {label_fraction}")
    tmpl = {col: Path(p) for col, p in (templates or {}).items()}
    columns = {c for m in modalities for c in FILE_COLUMNS[m]}
    bad = [c for c in tmpl if c not in columns]
    missing = [str(p) for p in tmpl.values() if not p.is_file()]
    if bad or missing:
        raise ValueError(
            f"templates: unknown column(s) {bad} (sheet has {sorted(columns)}), "
            f"missing file(s) {missing}"
        )

    out = Path(outdir)
    for m in modalities:
        (out / m).mkdir(parents=True, exist_ok=True)
    sids = subject_ids(n_subjects, prefix)
    n_labelled = round(label_fraction * n_subjects)
    rows = []
    for i, sid in enumerate(sids):
        row = dict.fromkeys(COLUMNS, "")
        row["subject"] = sid
        labelled = (i * n_labelled) // n_subjects != ((i + 1) * n_labelled) // n_subjects
        for m in modalities:
            for col, pattern in FILE_COLUMNS[m].items():
                if col == "label" and not labelled:
                    continue
                rel = f"{m}/{pattern.format(sid=sid)}"
                _place(out / rel, tmpl.get(col))
                indexes = INDEX_SUFFIXES.get(col, ())
                if col in tmpl:
                    indexes = [s for s in _TEMPLATE_INDEXES if Path(f"{tmpl[col]}{s}").is_file()]
                for suffix in indexes:
                    src = Path(f"{tmpl[col]}{suffix}") if col in tmpl else None
                    _place(out / f"{rel}{suffix}", src)
                row[col] = rel
        rows.append(row)
    if "genomics" in modalities:
        write_reference(out / "reference.fa")

    sheet = out / "samples.tsv"
    tmp = sheet.with_name(f".tmp-{sheet.name}")
    with open(tmp, "w") as fh:
        fh.write("\t".join(COLUMNS) + "\n")
        fh.writelines("\t".join(r[c] for c in COLUMNS) + "\n" for r in rows)
    os.replace(tmp, sheet)
    log.info("wrote %s: %d subjects, modalities %s", sheet, n_subjects, modalities)
    return sheet


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    p = argparse.ArgumentParser(
        prog="python -m voxseq.tools.large_sheet", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("outdir", type=Path, help="folder for samples.tsv and the input files")
    p.add_argument("--subjects", "-n", type=int, required=True, help="number of subjects")
    p.add_argument("--modalities", nargs="+", default=list(MODALITIES), choices=MODALITIES)
    p.add_argument(
        "--label-fraction",
        type=float,
        default=0.5,
        help="share of imaging subjects with a label (default 0.5)",
    )
    p.add_argument("--prefix", default="sub", help="subject-id prefix (default 'sub')")
    p.add_argument(
        "--template",
        action="append",
        default=[],
        metavar="COLUMN=FILE",
        help="link every subject's COLUMN file (image, label, bam, vcf) to FILE "
        "instead of writing an empty placeholder; repeatable",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    templates = {}
    for item in args.template:
        col, sep, path = item.partition("=")
        if not sep:
            p.error(f"--template {item!r}: expected COLUMN=FILE")
        templates[col] = path
    try:
        write_large_sheet(
            args.outdir, args.subjects, args.modalities, args.label_fraction, args.prefix, templates
        )
    except ValueError as exc:
        p.error(str(exc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
