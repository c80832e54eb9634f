"""Time `snakemake -n` (DAG building) for growing synthetic cohorts.

For each cohort size a sample sheet with both modalities and empty placeholder input files is
written (voxseq.tools.large_sheet) into a temporary folder, with a config derived from
config/config.yaml: demo disabled, both tracks enabled, the sheet and a placeholder reference.
Then ``snakemake -n`` runs on it and its wall time and job count are recorded.

    python benchmarks/dag_scaling.py                      # 250 500 1000 2000 10000 subjects
    python benchmarks/dag_scaling.py --sizes 250 2000 --profile profiles/slurm
    python benchmarks/dag_scaling.py --sizes 2000 --no-floor   # voxseq only

Snakemake's own floor: for each size, voxseq's job graph is dumped once with
``snakemake -n --dag`` and rewritten as a throwaway Snakefile with the same jobs and edges and
trivial rules (one rule per voxseq rule name, ``touch {output}``, no params, resources, groups,
checks or sheet; each job's inputs come from a dict lookup). Both are then dry-run the same way
(same flags, same snakemake, interleaved, ``--repeats`` times each; the best of each is kept:
one run of the same command varies by up to 30 % on a small virtual machine).

Prints a table (subjects, jobs, voxseq s, floor s, ratio, ms per job) and ends with the lines
``dry_run_2000_s=<seconds>``, ``dry_run_10000_s=<seconds>``, ``dag_floor_ratio_2000=<r>`` and
``dag_floor_ratio_10000=<r>`` (``nan`` when not measured).
If the workflow has no genomics rules yet, the genomics track is switched off and a note says
so. Several minutes in all; not a test.
"""

from __future__ import annotations

import argparse
import copy
import json
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


def _snakemake() -> str:
    here = Path(sys.executable).parent / "snakemake"  # the snakemake of this interpreter
    return str(here) if here.exists() else shutil.which("snakemake") or "snakemake"


def dry_run(
    folder: Path, config: Path | None, extra: list[str], snakefile: Path | None = None
) -> tuple[float, int | None, str]:
    """Run ``snakemake -n``; return (wall seconds, number of jobs, combined output).

    ``snakefile`` None is voxseq's (with ``config``); otherwise a floor Snakefile, run in its
    own folder with the same ``extra`` flags.
    """
    if snakefile is None:
        where = ["--snakefile", str(REPO / "Snakefile"), "--directory", str(folder / "work"),
                 "--configfile", str(config)]  # fmt: skip
    else:
        where = ["--snakefile", str(snakefile), "--directory", str(snakefile.parent / "work")]
        if "--workflow-profile" not in extra:  # voxseq's own workflow profile, found beside
            where += ["--workflow-profile", str(REPO / "profiles" / "default")]  # its Snakefile
    cmd = [_snakemake(), "-n", *where, *extra]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    out = res.stdout + res.stderr
    m = _TOTAL.search(out)
    if res.returncode != 0 or m is None:
        return seconds, None, out
    return seconds, int(m.group(1)), out


_NODE = re.compile(r'^\s*(\d+)\[label = "([^"\\]+)')
_EDGE = re.compile(r"^\s*(\d+) -> (\d+)")


def parse_dot(dot: str) -> tuple[dict[int, str], dict[int, list[int]]]:
    """Jobs (id -> rule name) and each job's parents from ``snakemake --dag`` output."""
    rules: dict[int, str] = {}
    parents: dict[int, list[int]] = {}
    for line in dot.splitlines():
        if m := _EDGE.match(line):
            parents.setdefault(int(m.group(2)), []).append(int(m.group(1)))
        elif m := _NODE.match(line):
            rules[int(m.group(1))] = m.group(2)
    return rules, parents


def write_floor(folder: Path, dot: str) -> tuple[Path, int]:
    """A Snakefile with voxseq's job graph and trivial rules; return (path, number of jobs).

    Job ``i`` of rule ``r`` writes ``f/r/i``; its inputs are its parents' outputs, looked up
    in a dict (``DEPS``) keyed by the job id. The target rule (``all``, nothing depends on it)
    becomes the floor's default target with a plain input list.
    """
    rules, parents = parse_dot(dot)
    children = {p for ps in parents.values() for p in ps}
    targets = [i for i in rules if i not in children]
    if len(targets) != 1:
        raise RuntimeError(f"expected one target job in the DAG, found {len(targets)}")
    (target,) = targets

    def out(i: int) -> str:
        return f"f/{rules[i]}/{i}"

    deps = {i: [out(p) for p in parents.get(i, [])] for i in rules if i != target}
    path = folder / "floor" / "Snakefile"
    (path.parent / "work").mkdir(parents=True, exist_ok=True)
    (path.parent / "deps.json").write_text(json.dumps(deps))
    lines = [
        "import json",
        f"DEPS = json.load(open({str(path.parent / 'deps.json')!r}))",
        "",
        "def deps(wildcards):",
        "    return DEPS[wildcards.i]",
        "",
        'wildcard_constraints:\n    i=r"\\d+"',
        "",
        "rule all:",
        f"    input: {[out(p) for p in parents.get(target, [])]!r}",
        "",
    ]
    for name in sorted({rules[i] for i in deps}):
        lines += [
            f"rule {name}:",
            "    input: deps",
            f'    output: "f/{name}/{{i}}"',
            '    shell: "touch {output}"',
            "",
        ]
    path.write_text("\n".join(lines))
    return path, len(rules)


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
    p.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="dry runs of voxseq and of the floor per size, interleaved; the best of each is kept",
    )
    p.add_argument("--no-floor", action="store_true", help="time voxseq only (no --dag, no floor)")
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
    sizes = sorted(args.sizes)
    rows: list[tuple[int, int, float, float]] = []  # subjects, jobs, voxseq s, floor s
    try:
        for n in sizes:
            folder = root / f"n{n}"
            t0 = time.perf_counter()
            write_large_sheet(folder / "input", n, ("imaging", "genomics"))
            sheet_s = time.perf_counter() - t0
            config = write_config(folder, n, genomics)
            seconds, jobs, out = dry_run(folder, config, extra)
            if jobs is None and genomics and "genomics" in out:
                print(
                    f"NOTE: the dry run with the genomics track failed; timing imaging only.\n"
                    f"      {_last_error(out)}"
                )
                genomics = False
                config = write_config(folder, n, genomics)
                seconds, jobs, out = dry_run(folder, config, extra)
            (folder / "dry_run.log").write_text(out)
            if jobs is None:
                print(
                    f"dry run failed for {n} subjects (log: {folder / 'dry_run.log'}):\n"
                    f"{out[-3000:]}"
                )
                return 1
            voxseq_s, floor_s = [seconds], []
            if not args.no_floor:
                floor, floor_jobs = build_floor(folder, config, extra)
                if floor_jobs != jobs:
                    print(f"floor for {n} subjects has {floor_jobs} jobs, voxseq {jobs}")
                    return 1
                for r in range(max(args.repeats, 1)):
                    if r:  # interleaved: voxseq, floor, voxseq, floor, ...
                        voxseq_s.append(dry_run(folder, config, extra)[0])
                    f_s, f_jobs, f_out = dry_run(folder, None, extra, floor)
                    (folder / "floor" / "dry_run.log").write_text(f_out)
                    if f_jobs != jobs:
                        print(f"floor dry run failed for {n} subjects:\n{f_out[-3000:]}")
                        return 1
                    floor_s.append(f_s)
            v, f = min(voxseq_s), min(floor_s) if floor_s else math.nan
            rows.append((n, jobs, v, f))
            print(
                f"  {n:>6} subjects: {jobs:>7} jobs, voxseq {_fmt(voxseq_s)} s, "
                f"floor {_fmt(floor_s)} s, ratio {v / f:.2f} "
                f"(sheet + placeholders {sheet_s:.1f} s)",
                flush=True,
            )
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)

    tracks = "imaging + genomics" if genomics else "imaging only"
    print(f"\nsnakemake -n, {tracks}{' with ' + args.profile if args.profile else ''}")
    print("(best of the repeats; floor = the same job graph with trivial rules):")
    print(f"{'subjects':>9} {'jobs':>8} {'voxseq_s':>9} {'floor_s':>8} {'ratio':>6} {'ms/job':>7}")
    for n, jobs, v, f in rows:
        print(f"{n:>9} {jobs:>8} {v:>9.1f} {f:>8.1f} {v / f:>6.2f} {1000 * v / jobs:>7.2f}")
    by_n = {n: (v, f) for n, _, v, f in rows}
    for n in (2000, 10000):
        print(f"dry_run_{n}_s={by_n.get(n, (math.nan,))[0]:.1f}")
    for n in (2000, 10000):
        v, f = by_n.get(n, (math.nan, math.nan))
        print(f"dag_floor_ratio_{n}={v / f:.2f}")
    return 0


def build_floor(folder: Path, config: Path, extra: list[str]) -> tuple[Path, int]:
    """Dump voxseq's DAG (``snakemake -n --dag``) and write the floor Snakefile from it."""
    flags = [f for f in extra if f not in ("--quiet", "rules")]
    _, _, out = dry_run(folder, config, [*flags, "--dag"])
    dot = out[out.index("digraph") :] if "digraph" in out else out
    (folder / "dag.dot").write_text(dot)
    return write_floor(folder, dot)


def _fmt(values: list[float]) -> str:
    return "/".join(f"{v:.1f}" for v in values) or "-"


def _last_error(out: str) -> str:
    lines = [ln for ln in out.splitlines() if "Error" in ln or "rule" in ln.lower()]
    return lines[-1] if lines else (out.strip().splitlines() or [""])[-1]


if __name__ == "__main__":
    raise SystemExit(main())
