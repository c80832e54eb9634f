"""The workflow is `snakemake --lint` clean (default config) and snakefmt-formatted."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO


def _snakemake_files() -> list[Path]:
    return [REPO / "Snakefile", *sorted((REPO / "workflow").rglob("*.smk"))]


def _tool(name: str) -> list[str]:
    exe = shutil.which(name) or str(Path(sys.executable).with_name(name))
    if not Path(exe).exists():
        pytest.fail(f"{name} is not installed (pip install -e .[test])")
    return [exe]


def test_snakemake_lint_is_clean():
    res = subprocess.run(
        [*_tool("snakemake"), "--lint", "--snakefile", str(REPO / "Snakefile")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = res.stdout + res.stderr
    assert res.returncode == 0 and "Lints for" not in out, f"snakemake --lint:\n{out[-6000:]}"


def test_snakefmt_check():
    files = [str(p) for p in _snakemake_files()]
    res = subprocess.run(
        [*_tool("snakefmt"), "--check", *files], cwd=REPO, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    if res.returncode != 0:
        diff = subprocess.run(
            [*_tool("snakefmt"), "--diff", *files], cwd=REPO, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        pytest.fail(
            f"snakefmt --check failed (run `snakefmt Snakefile workflow/`):\n"
            f"{res.stderr[-2000:]}\n{diff.stdout[-6000:]}"
        )
