"""Shared fixtures: a cpu/cuda ``device`` fixture, synthetic NIfTI writers, opt-in slow tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: opt in with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request):
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch.device(request.param)


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    nib.save(img, str(path))
    return path


def affine_for(codes: str, shape, spacing=(1.0, 1.0, 2.5)) -> np.ndarray:
    """A storage affine with the given axis codes (e.g. 'LPS'), for a volume of ``shape``."""
    from nibabel.orientations import axcodes2ornt, inv_ornt_aff, ornt_transform

    ras = np.diag([*spacing, 1.0])
    ornt = ornt_transform(axcodes2ornt(("R", "A", "S")), axcodes2ornt(tuple(codes)))
    canon_shape = [0, 0, 0]
    for i, (ax, _) in enumerate(ornt):
        canon_shape[int(ax)] = shape[i]
    return ras @ inv_ornt_aff(ornt, canon_shape)


def run_snakemake(workdir: Path, *args: str, timeout: int = 900, check: bool = True):
    """Run the workflow in ``workdir`` (a fresh working directory) and return the result."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
           "--directory", str(workdir), *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if check and res.returncode != 0:
        raise AssertionError(f"snakemake failed ({res.returncode}):\n{res.stdout[-4000:]}\n"
                             f"{res.stderr[-6000:]}")
    return res


def load_config(*changes: dict | str | Path) -> dict:
    """``config/config.yaml`` updated with each change (a dict or a YAML file) the way Snakemake
    applies ``--configfile`` (nested keys merged), as :func:`voxseq.plan.build_plan` gets it."""
    import yaml
    from snakemake.utils import update_config

    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    for change in changes:
        update_config(cfg, change if isinstance(change, dict) else yaml.safe_load(
            Path(change).read_text()))
    return cfg


def write_fasta(path: Path, genome: dict[str, bytes]) -> Path:
    """A FASTA of ``genome`` (contig -> bases), 60 bases per line."""
    with open(path, "w") as fh:
        for name, seq in genome.items():
            fh.write(f">{name}\n")
            fh.writelines(seq[i:i + 60].decode() + "\n" for i in range(0, len(seq), 60))
    return path


def write_coverage_store(path: Path, tracks: dict[str, np.ndarray], bin_size: int,
                         library_size: int = 100_000) -> Path:
    """A coverage store as voxseq.genomics.coverage writes it (attributes and ``track``)."""
    import json

    import h5py

    with h5py.File(path, "w") as h5:
        lengths = {c: len(t) * bin_size for c, t in tracks.items()}
        for k, v in {"bin_size": bin_size, "normalisation": "cpm", "contigs": json.dumps(lengths),
                     "library_size": library_size, "min_mapq": 10, "exclude_flags": 1796,
                     "count_deletions": False}.items():
            h5.attrs[k] = v
        for c, t in tracks.items():
            h5.create_group(c).create_dataset("track", data=t.astype(np.float32))
    return path


# the shared tiny run's config files (imaging only, with the QC stage)
TINY_RUN = [str(REPO / "tests/config/tiny.yaml"), str(REPO / "tests/config/tiny_with_qc.yaml")]


@pytest.fixture(scope="session")
def tiny_run_result(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One run of the tiny demo config and what it printed, shared by the tests that read its
    outputs or its terminal (tests that change a run work on :func:`copy_run` of it)."""
    work = tmp_path_factory.mktemp("tiny")
    res = run_snakemake(work, "--configfile", *TINY_RUN, "--cores", "2")
    return work, res


@pytest.fixture(scope="session")
def tiny_run(tiny_run_result) -> Path:
    """The working directory of the shared tiny run (:func:`tiny_run_result`)."""
    return tiny_run_result[0]


def copy_run(src: Path, dest: Path) -> Path:
    """A copy of the finished run in ``src`` at ``dest``, file times kept, so that Snakemake sees
    the same finished run there. The resolved sheet (``results/<cohort>/sheet.tsv``) still names
    the sources under ``src``: map them with :func:`in_copy`."""
    import shutil

    shutil.copytree(src, dest, symlinks=True)
    return dest


def in_copy(path: str | Path, src: Path, dest: Path) -> Path:
    """``path`` (a file under the run ``src``, as its resolved sheet names it) in ``dest``."""
    return dest / Path(path).relative_to(src)
