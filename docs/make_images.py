"""Render the documentation's pictures into docs/images/ from a finished demo run.

- ``results_page.png``: a headless-Chromium screenshot of ``results/demo/report/results.html``
  (a standalone page: its figures are inlined);
- ``rulegraph.png``: ``snakemake --rulegraph`` drawn by graphviz ``dot``;
- one figure per stage (:data:`FIGURES`), copied from the run's report folders.

Run it after the default demo (``.venv/bin/snakemake --cores 2``), from the repository root::

    apt-get install -y graphviz chromium        # dot and a headless browser (Debian)
    .venv/bin/python docs/make_images.py
    .venv/bin/python docs/make_images.py --only rulegraph     # no demo run needed

Every output is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the voxseq package, when run as a plain script

from voxseq import VoxseqError  # noqa: E402
from voxseq.io.atomic import atomic_path  # noqa: E402

log = logging.getLogger("voxseq.docs")

#: docs/images/<name> -> (source under results/<cohort>/, the stage it shows). A source with a
#: ``*`` takes the first match in sorted order.
FIGURES: dict[str, tuple[str, str]] = {
    "training_curves.png": ("imaging/report/training_curves.png", "imaging train"),
    "overlay.png": ("imaging/report/overlays/*.png", "imaging infer"),
    "dice_boxplot.png": ("imaging/report/dice_boxplot.png", "imaging infer"),
    "classify_roc.png": ("imaging/report/classify_roc.png", "subject classification"),
    "qc_scores.png": ("imaging/report/qc_scores.png", "quality control"),
    "qc_profiles.png": ("genomics/report/qc_profiles.png", "genomics quality control"),
    "genomics_arch_comparison.png": (
        "genomics/report/genomics_arch_comparison.png", "genomics train"),
    "observed_vs_predicted.png": ("genomics/report/observed_vs_predicted.png", "genomics infer"),
    "variant_effects.png": ("genomics/report/variant_effects.png", "variant effects"),
    "motif_logos.png": ("genomics/report/motif_logos.png", "interpretation"),
    "subject_model_roc.png": ("subject_model/subject_model_roc.png", "subject model"),
}
RESULTS_PAGE = "results_page.png"
RULEGRAPH = "rulegraph.png"
WINDOW = "1400,2000"


def find_source(results: Path, pattern: str) -> Path:
    """The file ``pattern`` names under ``results`` (first sorted match of a glob)."""
    matches = sorted(results.glob(pattern))
    if not matches:
        raise VoxseqError(f"{results / pattern}: not found; run the demo to the end first")
    return matches[0]


def copy_figures(results: Path, out: Path) -> list[Path]:
    """Copy every :data:`FIGURES` entry from a run's ``results`` folder into ``out``.

    Raises
    ------
    VoxseqError
        Naming every missing source, before anything is copied.
    """
    sources, missing = {}, []
    for name, (pattern, _) in FIGURES.items():
        try:
            sources[name] = find_source(results, pattern)
        except VoxseqError as exc:
            missing.append(str(exc))
    if missing:
        raise VoxseqError("figures missing:\n  " + "\n  ".join(missing))
    written = []
    for name, src in sources.items():
        with atomic_path(out / name) as tmp:
            shutil.copyfile(src, tmp)
        written.append(out / name)
        log.info("%s <- %s", name, src)
    return written


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise VoxseqError(f"{name}: not on PATH (Debian: apt-get install -y "
                          f"{'graphviz' if name == 'dot' else name})")
    return path


def render_rulegraph(out_png: Path, snakemake: str, configfile: str | None = None) -> Path:
    """``snakemake --rulegraph`` (a dry operation, default config unless ``configfile``) drawn
    by graphviz ``dot`` into ``out_png``."""
    cmd = [snakemake, "--rulegraph", "--snakefile", str(REPO / "Snakefile"), "--quiet", "all"]
    if configfile:
        cmd += ["--configfile", configfile]
    graph = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if graph.returncode != 0 or "digraph" not in graph.stdout:
        raise VoxseqError(f"snakemake --rulegraph failed ({graph.returncode}):\n"
                          f"{graph.stderr[-3000:]}")
    dot_source = graph.stdout[graph.stdout.index("digraph"):]
    with atomic_path(out_png) as tmp:
        subprocess.run([_tool("dot"), "-Tpng", "-Gdpi=110", "-o", str(tmp)], input=dot_source,
                       text=True, check=True)
    log.info("%s <- snakemake --rulegraph | dot", out_png.name)
    return out_png


def screenshot(page: Path, out_png: Path, browser: str = "chromium") -> Path:
    """A headless-browser screenshot of a local HTML page."""
    if not page.is_file():
        raise VoxseqError(f"{page}: not found; run the demo to the end first")
    with atomic_path(out_png) as tmp:
        subprocess.run(
            [_tool(browser), "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--hide-scrollbars", f"--window-size={WINDOW}",
             f"--screenshot={tmp}", page.resolve().as_uri()],
            check=True, capture_output=True, timeout=300)
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise VoxseqError(f"{browser} wrote no screenshot of {page}")
    log.info("%s <- %s", out_png.name, page)
    return out_png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results/demo", help="the demo run's results folder")
    parser.add_argument("--out", default=str(REPO / "docs" / "images"))
    parser.add_argument("--snakemake", default=str(REPO / ".venv" / "bin" / "snakemake"))
    parser.add_argument("--browser", default="chromium")
    parser.add_argument("--only", choices=["rulegraph", "results_page", "figures"], nargs="+",
                        default=["rulegraph", "results_page", "figures"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out, results = Path(args.out), (REPO / args.results)
    out.mkdir(parents=True, exist_ok=True)
    try:
        if "rulegraph" in args.only:
            render_rulegraph(out / RULEGRAPH, args.snakemake)
        if "results_page" in args.only:
            screenshot(results / "report" / "results.html", out / RESULTS_PAGE, args.browser)
        if "figures" in args.only:
            copy_figures(results, out)
    except VoxseqError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
