"""Time `snakemake -n` (DAG building) for growing synthetic cohorts.

For each cohort size a sample sheet with both modalities and empty placeholder input files is
written (voxseq.tools.large_sheet) into a temporary folder, with a config derived from
config/config.yaml: demo disabled, both tracks enabled, the sheet and a placeholder reference.
Then ``snakemake -n`` runs on it and its wall time and job count are recorded.

    python benchmarks/dag_scaling.py                      # 250 500 1000 2000 10000 subjects
    python benchmarks/dag_scaling.py --sizes 250 2000 --profile profiles/slurm

Prints a table (subjects, jobs, seconds, ms per job) and ends with the lines
``dry_run_2000_s=<seconds>`` and ``dry_run_10000_s=<seconds>`` (``nan`` when not measured).
If the workflow has no genomics rules yet, the genomics track is switched off and a note says
so. Several minutes in all; not a test.
"""

from __future__ import annotations

import argparse
import copy
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from voxseq.tools.large_sheet import write_large_sheet  # noqa: E402

SIZES = (250, 500, 1000, 2000, 10000)
_TOTAL = re.compile(r"^total\s+(\d+)\s*$", re.MULTILINE)


def write_config(folder: Path, n: int, genomics: bool) -> Path:
    """The default config, pointed at a synthetic sheet of ``n`` subjects in ``folder``."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg = copy.deepcopy(cfg)
    cfg["cohort"] = f"scale{n}"
    cfg["samples"] = str(folder / "input" / "samples.tsv")
    cfg["demo"]["enabled"] = False
    cfg["imaging"]["enabled"] = True
    cfg["genomics"]["enabled"] = genomics
    cfg["genomics"]["reference"] = str(folder / "input" / "reference.fa")
    # the placeholder reference has two ~1 kb contigs (chr1, chr2): windows and the contig
    # split must fit it, as they are checked against its .fai at DAG-building time
    cfg["genomics"].update(window=512, stride=256, val_contigs=["chr2"], test_contigs=[])
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def dry_run(folder: Path, config: Path, extra: list[str]) -> tuple[float, int | None, str]:
    """Run ``snakemake -n``; return (wall seconds, number of jobs, combined output)."""
    cmd = [
        shutil.which("snakemake") or "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(folder / "work"), "--configfile", str(config), *extra,
    ]  # fmt: skip
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    out = res.stdout + res.stderr
    m = _TOTAL.search(out)
    if res.returncode != 0 or m is None:
        return seconds, None, out
    return seconds, int(m.group(1)), out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    p.add_argument(
        "--profile",
        default=None,
        help="also pass --profile PROFILE (e.g. profiles/slurm: groups, resources)",
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="pass --quiet rules (do not print every job; measures DAG building)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the sheets, configs and logs here (default: a removed temp dir)",
    )
    args = p.parse_args(argv)

    extra: list[str] = []
    if args.profile:
        extra += ["--profile", args.profile, "--workflow-profile", "none"]
        if shutil.which("conda") is None:  # the profile deploys conda envs; none here
            print("NOTE: no conda here; conda deployment switched off (--sdm env-modules)")
            extra += ["--sdm", "env-modules"]
    if args.quiet:
        extra += ["--quiet", "rules"]
    root = args.workdir or Path(tempfile.mkdtemp(prefix="voxseq-dag-"))
    root.mkdir(parents=True, exist_ok=True)
    genomics = True
    rows: list[tuple[int, int | None, float]] = []
    try:
        for n in sorted(args.sizes):
            folder = root / f"n{n}"
            t0 = time.perf_counter()
            write_large_sheet(folder / "input", n, ("imaging", "genomics"))
            sheet_s = time.perf_counter() - t0
            seconds, jobs, out = dry_run(folder, write_config(folder, n, genomics), extra)
            if jobs is None and genomics and "genomics" in out:
                print(
                    f"NOTE: the dry run with the genomics track failed; timing imaging only.\n"
                    f"      {_last_error(out)}"
                )
                genomics = False
                seconds, jobs, out = dry_run(folder, write_config(folder, n, genomics), extra)
            (folder / "dry_run.log").write_text(out)
            if jobs is None:
                print(
                    f"dry run failed for {n} subjects (log: {folder / 'dry_run.log'}):\n"
                    f"{out[-3000:]}"
                )
                return 1
            rows.append((n, jobs, seconds))
            print(
                f"  {n:>6} subjects: {jobs:>7} jobs, {seconds:7.1f} s "
                f"(sheet + placeholders {sheet_s:.1f} s)",
                flush=True,
            )
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)

    tracks = "imaging + genomics" if genomics else "imaging only"
    print(f"\nsnakemake -n, {tracks}{' with ' + args.profile if args.profile else ''}:")
    print(f"{'subjects':>9} {'jobs':>8} {'seconds':>9} {'ms/job':>8}")
    for n, jobs, seconds in rows:
        print(f"{n:>9} {jobs:>8} {seconds:>9.1f} {1000 * seconds / jobs:>8.2f}")
    by_n = {n: s for n, _, s in rows}
    for n in (2000, 10000):
        print(f"dry_run_{n}_s={by_n.get(n, math.nan):.1f}")
    return 0


def _last_error(out: str) -> str:
    lines = [ln for ln in out.splitlines() if "Error" in ln or "rule" in ln.lower()]
    return lines[-1] if lines else (out.strip().splitlines() or [""])[-1]


if __name__ == "__main__":
    raise SystemExit(main())
