"""Kill and resume, determinism, atomic writes and containment."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import REPO, copy_run, run_snakemake

from voxseq.io.atomic import read_tsv

CFG = str(REPO / "tests/config/tiny.yaml")
# more epochs than the plain tiny run, so that there is time to kill it during training
LONGER = [str(REPO / "tests/config/tiny_resume.yaml")]
# what these tests compare: the cohort table and every job upstream of it (reports left out)
TARGET = "results/tiny/imaging/cohort.tsv"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _outputs(work: Path) -> dict[str, str]:
    """Hashes of every deterministic output (timings and timestamps excluded)."""
    res = work / "results/tiny"
    files = sorted((res / "imaging/infer").glob("*")) + sorted(
        (res / "imaging/normalise").rglob("c/**/*")) + [
        res / "imaging/cohort.tsv", work / "models/tiny/imaging/weights.safetensors",
        work / "models/tiny/imaging/bundle.json"]
    files += sorted((res / "imaging/tile").glob("*.tsv"))
    out = {str(f.relative_to(work)): _digest(f) for f in files if f.is_file()}
    # the resolved sheet holds absolute paths (they differ between working folders): its splits
    out["splits"] = str([(r["subject"], r["split"]) for r in read_tsv(res / "sheet.tsv")])
    metrics = (res / "imaging/train/metrics.tsv").read_text().splitlines()
    out["metrics-without-seconds"] = hashlib.sha256(
        "\n".join(line.rsplit("\t", 1)[0] for line in metrics).encode()).hexdigest()
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("straight")
    run_snakemake(work, "--configfile", CFG, *LONGER, "--cores", "2", TARGET)
    return work


def test_determinism_same_seed_same_outputs(uninterrupted, tmp_path):
    run_snakemake(tmp_path, "--configfile", CFG, *LONGER, "--cores", "2", TARGET)
    a, b = _outputs(uninterrupted), _outputs(tmp_path)
    # every subject's normalised volumes and inference are compared, with the model and tables
    subjects = [r["subject"] for r in read_tsv(tmp_path / "results/tiny/sheet.tsv")]
    assert len(subjects) == 4 and len(a) > 20
    for s in subjects:
        for part in (f"infer/{s}_seg.nii.gz", f"infer/{s}.json", f"normalise/{s}.zarr/"):
            assert any(k.startswith(f"results/tiny/imaging/{part}") for k in a), (s, part)
    assert a == b


def test_kill_during_training_then_resume(uninterrupted, tmp_path):
    """Training killed after two epochs resumes from its checkpoint to the same outputs as the
    uninterrupted run. The jobs before training are the uninterrupted run's (a copy, without the
    outputs of the training and of every job after it, its log and checkpoints): those run again."""
    work = copy_run(uninterrupted, tmp_path / "run")
    for done in ("results/tiny/imaging/train", "models/tiny/imaging", "results/tiny/imaging/infer"):
        shutil.rmtree(work / done)
    for done in ("results/tiny/logs/imaging/train.log", TARGET):
        (work / done).unlink()
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
           str(work), "--configfile", CFG, *LONGER, "--cores", "2", TARGET]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    progress = work / "results/tiny/imaging/train/checkpoints/metrics.tsv"
    deadline = time.time() + 600
    try:
        while time.time() < deadline:
            if progress.exists() and len(progress.read_text().splitlines()) >= 3:  # 2 epochs
                break
            if proc.poll() is not None:
                pytest.fail("the run ended before it could be killed")
            time.sleep(0.2)
        else:
            pytest.fail("training never reached epoch 2")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (work / "models/tiny/imaging/weights.safetensors").exists()
    # the documented resume: unlock (a killed Snakemake leaves its lock), then the same command
    run_snakemake(work, "--configfile", CFG, *LONGER, "--unlock")
    run_snakemake(work, "--configfile", CFG, *LONGER, "--cores", "2", TARGET)
    log = (work / "results/tiny/logs/imaging/train.log").read_text()
    assert "resuming from" in log and "after epoch 0" not in log.split("resuming from")[0]
    resumed_after = int(log.split("after epoch ")[1].split()[0])
    assert resumed_after >= 1
    assert "epoch 1/6" not in log  # the resumed job did not start from epoch 0
    assert _outputs(work) == _outputs(uninterrupted)


KILL_WRITER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {repo!r})
    import numpy as np
    target, kind = sys.argv[1], sys.argv[2]
    def die(*a, **k):
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "zarr":
        import zarr
        zarr.Array.__setitem__ = die
        from voxseq.imaging.store import write_store
        write_store(target, np.zeros((8, 8, 8), np.float32), None, [1, 1, 1], {{}})
    elif kind == "nifti":
        import nibabel
        orig = nibabel.save
        def half(img, path):
            open(path, "wb").write(b"partial")
            die()
        nibabel.save = half
        from voxseq.io import nifti
        nifti.nib.save = half
        nifti.save_nifti(target, np.zeros((4, 4, 4), np.uint8), np.eye(4))
    elif kind == "json":
        import json
        json.dumps = die
        from voxseq.io.atomic import write_json
        write_json(target, {{"a": 1}})
    elif kind == "bundle":
        import safetensors.torch as st
        from voxseq import bundle
        bundle.save_file = lambda state, path: (open(path, "wb").write(b"x"), die())
        from voxseq.models import build_model
        m = build_model("unet3d", depth=1, base_channels=2)
        bundle.write_bundle(target, m, "imaging", "unet3d", {{}}, {{}}, {{}}, {{}})
""")


@pytest.mark.parametrize("kind, name", [("zarr", "s.zarr"), ("nifti", "s_seg.nii.gz"),
                                        ("json", "s.json"), ("bundle", "bundle")])
def test_killed_writer_leaves_nothing_at_the_final_path(tmp_path, kind, name):
    script = tmp_path / "writer.py"
    script.write_text(KILL_WRITER.format(repo=str(REPO)))
    target = tmp_path / "out" / name
    res = subprocess.run([sys.executable, str(script), str(target), kind], capture_output=True)
    assert res.returncode == -signal.SIGKILL, res.stderr.decode()[-2000:]
    assert not target.exists()


def test_rules_never_run_shell_commands():
    """No rule uses shell:/run:, so no sheet or config string reaches a shell."""
    for smk in (REPO / "workflow/rules").glob("*.smk"):
        text = smk.read_text()
        assert "shell:" not in text and "\n    run:" not in text, smk.name


def test_outputs_stay_inside_the_results_folder(tmp_path):
    res = run_snakemake(tmp_path, "--configfile", CFG, "-n", "--summary")
    files = [line.split("\t")[0] for line in res.stdout.splitlines()
             if "\t" in line and not line.startswith("output_file")]
    assert len(files) > 40
    assert [f for f in files if not f.startswith(("results/tiny/", "models/tiny/"))] == []
