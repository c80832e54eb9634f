"""The tiny demo through a real one-node SLURM cluster, with the site profile profiles/slurm.

The cluster (tests/slurm_cluster.py) has the partitions the profile names and advertises fake
GPUs. The run uses the profile as a user would, except for what a laptop-sized cluster without
conda channels or accounting needs: conda is switched off (``--sdm env-modules``: no rule has an
``envmodules:`` directive, so nothing is deployed; ``--sdm`` takes no empty value), job status
comes from ``squeue``, no account, no retries, batches of 3 subjects (the profile's groups and,
test-only, normalise + tile and inference: fewer, longer jobs keep the run short on 2 cores,
and the six subjects still make several group jobs, GPU ones included) and successful jobs keep
their SLURM logs.

The test then shows, from the Snakemake log and from SLURM itself, that every job that is not a
localrule was submitted to SLURM and completed there, each in the partition its resources name,
that exactly the jobs with a ``gpu`` resource were given a GPU (a ``gpu`` GRES in the job's
allocation and ``CUDA_VISIBLE_DEVICES`` set inside the job), and that a group job asks for its
largest member's memory and the sum of its members' runtimes (profile's ``group_slot``). The whole
tiny demo through SLURM is opt-in (``--runslow``); by default a copy of the shared tiny run
retrains through SLURM (training, inference in group jobs, the training report) with the same
checks.

A second test trains with ``imaging.train.gpus: 2`` (the upstream steps run locally first, then
only the training job goes through SLURM): the job is given 2 GPUs with CPUs and memory scaled
to 2, once with the profile's default ``--gpus=N`` and once with its ``--gres=gpu:N`` SITE
switch. The fake GPUs have no CUDA, so the two data-parallel processes train on the CPU (gloo).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import REPO, TINY_RUN, copy_run, run_snakemake
from slurm_cluster import (
    PROLOG_TAG,
    SlurmUnavailable,
    ensure_slurm_installed,
    local_slurm_cluster,
)

pytestmark = pytest.mark.slurm

PROFILE = REPO / "profiles" / "slurm"
TINY = REPO / "tests" / "config" / "tiny.yaml"
#: Test-only overrides of the profile (see the module docstring).
CLUSTER_ARGS = (
    "--workflow-profile", "none",
    "--sdm", "env-modules",
    "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "1",
    "--slurm-keep-successful-logs",
    "--retries", "0",
)  # fmt: skip
#: Subjects per group job in the test (the profile's batches are larger than the tiny cohort).
TEST_BATCH = 3
#: Test-only batches of the per-subject rules that the profile leaves ungrouped: fewer, longer
#: SLURM jobs keep the run short on 2 cores (the executor polls job states at growing intervals).
TEST_GROUPS = {"imaging_normalise": "t_prepare", "imaging_tile": "t_prepare",
               "imaging_infer": "t_infer"}  # fmt: skip
RUN_TIMEOUT_S = 420


def read_profile(profile: Path = PROFILE) -> dict:
    return yaml.safe_load((profile / "profile.yaml").read_text())


def profile_partitions(profile: Path = PROFILE) -> list[str]:
    """Partitions named by the profile: the default one first, then the per-rule ones."""
    cfg = read_profile(profile)
    names = [cfg.get("default-resources", {}).get("slurm_partition")]
    names += [r.get("slurm_partition") for r in (cfg.get("set-resources") or {}).values()]
    names = [str(n).strip("'\"") for n in names if n]
    return list(dict.fromkeys(names)) or ["debug"]


@dataclass
class LoggedJob:
    """One job block of a Snakemake log."""

    jobid: str
    rule: str
    local: bool
    resources: dict[str, str] = field(default_factory=dict)
    group: str | None = None
    wildcards: str = ""
    threads: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """What names the job across Snakemake processes (job ids differ inside a SLURM job)."""
        return self.rule, self.wildcards


@dataclass
class Submission:
    """One SLURM job of the executor: a single job, a group job or one task of a job array."""

    slurm_id: str
    log: Path | None  # None for array tasks: SLURM names their logs (see slurm_log_of)
    jobs: list[LoggedJob]


_JOB = re.compile(r"^(\s*)(localrule|rule) (\S+):$")
_GROUP = re.compile(r"Group job (\S+) \(jobs in lexicogr\. order\):$")
_FIELD = re.compile(r"^\s+(jobid|resources|wildcards|threads): (.*)$")
_SUBMIT = re.compile(r"^Job (\S+) has been submitted with SLURM jobid (\S+) \(log: (.+)\)\.$")
_ARRAY = re.compile(
    r"Submitted array job with Snakemake IDs (\S+) and SLURM job ID (\d+)\. "
    r"The individual task IDs are (\d+)-(\d+)\."
)


def parse_log(
    text: str, members_of: Callable[[Path], set[tuple[str, str]]] | None = None
) -> tuple[list[LoggedJob], list[Submission]]:
    """Job blocks and SLURM submissions of a Snakemake (main process) log.

    Group jobs are printed when they start and submitted in the background, so two group jobs of
    one group printed together may be submitted in either order, and the log names a group
    submission only by a uuid and its SLURM log. ``members_of`` (SLURM log -> the ``key`` of
    each job it ran, see :func:`slurm_log_members`) tells which printed group job a submission
    is; without it a submission is matched to the first pending group job of its name.
    """
    jobs: list[LoggedJob] = []
    groups: list[tuple[str, list[LoggedJob]]] = []  # printed, not yet matched to a submission
    subs: list[Submission] = []
    current: LoggedJob | None = None
    for line in text.splitlines():
        if m := _GROUP.search(line):
            groups.append((m.group(1), []))
            current = None
        elif m := _JOB.match(line):
            member = bool(m.group(1)) and bool(groups)
            current = LoggedJob(
                "", m.group(3), m.group(2) == "localrule", group=groups[-1][0] if member else None
            )
            jobs.append(current)
            if member:
                groups[-1][1].append(current)
        elif current is not None and (m := _FIELD.match(line)):
            if m.group(1) == "jobid":
                current.jobid = m.group(2).strip()
            elif m.group(1) == "wildcards":
                current.wildcards = m.group(2).strip()
            elif m.group(1) == "threads":
                current.threads = m.group(2).strip()
            else:
                current.resources = dict(
                    kv.split("=", 1) for kv in m.group(2).split(", ") if "=" in kv
                )
        elif m := _ARRAY.search(line):
            current = None
            ids, slurm_id, first = m.group(1).split(","), m.group(2), int(m.group(3))
            for task, ident in enumerate(ids, start=first):
                job = [j for j in jobs if j.jobid == ident and j.group is None][-1:]
                if not job:
                    raise AssertionError(f"array task of unknown job {ident}: {line}")
                subs.append(Submission(f"{slurm_id}_{task}", None, job))
        elif m := _SUBMIT.match(line):
            current = None
            ident, slurm_id, log = m.groups()
            single = [j for j in jobs if j.jobid == ident and j.group is None]
            if single:
                subs.append(Submission(slurm_id, Path(log), single[-1:]))
                continue
            name = next((g for g, _ in groups if f"/group_{g}_" in log), None)
            pending = [i for i, (g, _) in enumerate(groups) if g == name]
            if members_of is not None:
                ran = members_of(Path(log))
                pending = [i for i in pending if {j.key for j in groups[i][1]} == ran]
            if not pending:
                raise AssertionError(f"submission of unknown job {ident}: {line}")
            subs.append(Submission(slurm_id, Path(log), groups.pop(pending[0])[1]))
    return jobs, subs


def slurm_log_members(slurm_log: Path) -> set[tuple[str, str]]:
    """``(rule, wildcards)`` of each job a SLURM job ran: the ``--target-jobs`` of the job step's
    Snakemake command, which its banner prints into the SLURM log (``Command: ...``)."""
    m = re.search(r"^\s*Command: .*? --target-jobs (.*?)(?: --|$)", slurm_log.read_text(), re.M)
    if m is None:
        raise AssertionError(f"no --target-jobs in {slurm_log}")
    found = set()
    for target in m.group(1).split():
        rule, _, wildcards = target.partition(":")
        found.add((rule, ", ".join(w for w in wildcards.split(",") if w)))
    return found


def slurm_log_of(sub: Submission, slurm_logs: Path) -> Path:
    """The SLURM log of a submission (array tasks: ``rule_<rule>/<jobid>_<task>.log``)."""
    if sub.log is not None:
        return sub.log
    return slurm_logs / f"rule_{sub.jobs[0].rule}" / f"{sub.slurm_id}.log"


def slurm_minutes(limit: str) -> int:
    """A SLURM time limit (``[D-]HH:MM:SS``, ``MM:SS``) in whole minutes."""
    days, _, hms = limit.rpartition("-")
    parts = [int(x) for x in hms.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    return int(days or 0) * 1440 + parts[0] * 60 + parts[1] + (parts[2] > 0)


def slurm_mb(size: str) -> int:
    """A SLURM memory figure (``16000M``, ``62.50G``: scontrol prints G where it is exact) in MB."""
    m = re.fullmatch(r"([\d.]+)([MGT])", size or "")
    if m is None:
        raise AssertionError(f"not a SLURM memory size: {size!r}")
    return round(float(m.group(1)) * {"M": 1, "G": 1024, "T": 1024**2}[m.group(2)])


def prolog_gpus(slurm_log: Path) -> str:
    """``CUDA_VISIBLE_DEVICES`` as the job saw it (written by the cluster's task prolog)."""
    m = re.search(rf"{PROLOG_TAG} CUDA_VISIBLE_DEVICES=(\S+)", slurm_log.read_text())
    if m is None:
        raise AssertionError(f"no task prolog line in {slurm_log}")
    return m.group(1)


@pytest.fixture(scope="module")
def slurm_cluster():
    try:
        ensure_slurm_installed()
    except SlurmUnavailable as exc:
        pytest.skip(f"SLURM cannot be installed here: {exc}")
    with local_slurm_cluster(
        partitions=profile_partitions(), gpus=4, cpus=64, mem_mb=256_000
    ) as cluster:
        yield cluster


def test_profile_partitions_are_read():
    parts = profile_partitions()
    assert parts and all(re.fullmatch(r"[\w.-]+", p) for p in parts), parts


def test_slurm_minutes():
    assert slurm_minutes("01:30:00") == 90 and slurm_minutes("1-00:10:00") == 1450
    assert slurm_minutes("05:00") == 5


def test_slurm_mb():
    assert slurm_mb("16000M") == 16000 and slurm_mb("62.50G") == 64000 and slurm_mb("1T") == 1048576


def test_parse_log_matches_group_submissions():
    text = "\n".join([
        "rule a:", "    jobid: 4", "    resources: mem_mb=10, gpu=1",
        "Job 4 has been submitted with SLURM jobid 7 (log: /x/rule_a/7.log).",
        "[Mon] Group job g (jobs in lexicogr. order):",
        "    rule b:", "        jobid: 5", "    rule b:", "        jobid: 6",
        "Job 0f-1 has been submitted with SLURM jobid 8 (log: /x/group_g_b/8.log).",
        "localrule c:", "    jobid: 1",
        "rule d:", "    jobid: 9", "rule d:", "    jobid: 10",
        "Submitted array job with Snakemake IDs 9,10 and SLURM job ID 11. The individual "
        "task IDs are 1-2.",
    ])  # fmt: skip
    jobs, subs = parse_log(text)
    assert [(j.rule, j.jobid, j.local, j.group) for j in jobs] == [
        ("a", "4", False, None), ("b", "5", False, "g"), ("b", "6", False, "g"),
        ("c", "1", True, None), ("d", "9", False, None), ("d", "10", False, None),
    ]  # fmt: skip
    assert [(s.slurm_id, [j.jobid for j in s.jobs]) for s in subs] == [
        ("7", ["4"]), ("8", ["5", "6"]), ("11_1", ["9"]), ("11_2", ["10"]),
    ]  # fmt: skip
    assert jobs[0].resources == {"mem_mb": "10", "gpu": "1"}


def test_parse_log_pairs_group_jobs_by_their_members():
    """Two group jobs of one group, printed together and submitted in the other order."""
    text = "\n".join([
        "[Mon] Group job g (jobs in lexicogr. order):",
        "    rule n:", "        jobid: 1", "        wildcards: subject=a",
        "        resources: runtime=20",
        "    rule t:", "        jobid: 2", "        wildcards: subject=a",
        "        resources: runtime=10",
        "[Mon] Group job g (jobs in lexicogr. order):",
        "    rule n:", "        jobid: 3", "        wildcards: subject=b",
        "        resources: runtime=20",
        "Job u2 has been submitted with SLURM jobid 8 (log: /x/group_g_n_t/8.log).",
        "Job u1 has been submitted with SLURM jobid 9 (log: /x/group_g_n_t/9.log).",
    ])  # fmt: skip
    ran = {"8.log": {("n", "subject=b")}, "9.log": {("n", "subject=a"), ("t", "subject=a")}}
    _, subs = parse_log(text, members_of=lambda log: ran[log.name])
    assert [(s.slurm_id, [j.jobid for j in s.jobs]) for s in subs] == [
        ("8", ["3"]), ("9", ["1", "2"]),
    ]  # fmt: skip
    _, naive = parse_log(text)  # by name and order alone: the wrong pairing
    assert [(s.slurm_id, [j.jobid for j in s.jobs]) for s in naive][0] == ("8", ["1", "2"])


def test_slurm_log_members_reads_the_job_steps_targets(tmp_path):
    log = tmp_path / "4.log"
    log.write_text(
        "voxseq-slurm-test CUDA_VISIBLE_DEVICES=unset\n"
        "  Command: /x/snakemake/__main__.py --snakefile /x/Snakefile --target-jobs "
        "n:subject=a t:subject=a,part=1 train: --allowed-rules n t --cores 16\n"
        "  Command: /x/snakemake/__main__.py --target-jobs n:subject=a --allowed-rules n\n"
    )
    assert slurm_log_members(log) == {("n", "subject=a"), ("t", "subject=a, part=1"), ("train", "")}


def batch_args() -> list[str]:
    """``--groups``/``--group-components`` of the profile with the test's batches added."""
    profile = read_profile()
    # --groups on the command line replaces the profile's groups: pass them on with the test's
    rule_groups = {**(profile.get("groups") or {}), **TEST_GROUPS}
    groups = [*(profile.get("group-components") or {}), *set(TEST_GROUPS.values())]
    args = ["--groups", *(f"{r}={g}" for r, g in rule_groups.items())]
    return args + ["--group-components", *(f"{g}={TEST_BATCH}" for g in groups)]


def check_slurm_jobs(work: Path, cluster) -> tuple[list[LoggedJob], set[str]]:
    """Check the last run in ``work`` against its Snakemake log and SLURM itself: every job that
    is not a localrule was submitted to SLURM (some as group jobs) and completed in the partition
    its resources name, exactly the jobs with a ``gpu`` resource were given a GPU, a group job
    asked for its largest member's memory and the sum of its members' runtimes. Returns the
    jobs that went through SLURM and the rules given a GPU."""
    logs = sorted((work / ".snakemake" / "log").glob("*.snakemake.log"))
    assert logs, "no Snakemake log"
    jobs, subs = parse_log(logs[-1].read_text(), members_of=slurm_log_members)
    remote = [j for j in jobs if not j.local]
    submitted = {id(j) for s in subs for j in s.jobs}
    assert remote and subs, f"no SLURM submissions in {logs[-1]}"
    missing = [f"{j.rule} (jobid {j.jobid})" for j in remote if id(j) not in submitted]
    assert not missing, f"non-local jobs that did not go through SLURM: {missing}"
    assert len({s.slurm_id for s in subs}) == len(subs), "a SLURM job id appears twice"
    assert any(len(s.jobs) > 1 for s in subs), "no group job was submitted"
    assert {j.rule for j in jobs if j.local} >= {"all"}, "expected localrules in the log"

    slurm_logs = work / ".snakemake" / "slurm_logs"
    gpu_rules = set()
    for sub in subs:
        log = slurm_log_of(sub, slurm_logs)
        assert log.is_file() and log.is_relative_to(slurm_logs), log
        info = cluster.job(sub.slurm_id)
        rules = sorted({j.rule for j in sub.jobs})
        assert info.get("JobState") == "COMPLETED", (rules, info)
        partitions = {j.resources.get("slurm_partition") for j in sub.jobs}
        assert partitions == {info.get("Partition")}, (rules, partitions, info)
        if len(sub.jobs) > 1:  # one group_slot: largest member's memory, summed runtimes
            mem = max(int(j.resources["mem_mb"]) for j in sub.jobs)
            minutes = sum(int(j.resources["runtime"]) for j in sub.jobs)
            given = info.get("MinMemoryNode")
            assert slurm_mb(given) == mem, (rules, mem, given)
            members = [(j.rule, j.jobid, j.resources.get("runtime")) for j in sub.jobs]
            assert slurm_minutes(info.get("TimeLimit", "")) == minutes, (members, minutes, info)
        wants_gpu = any(int(j.resources.get("gpu", 0) or 0) > 0 for j in sub.jobs)
        visible = prolog_gpus(log)
        if wants_gpu:
            gpu_rules.update(rules)
            assert info.get("JOB_GRES", "").startswith("gpu:"), (rules, info.get("JOB_GRES"))
            assert re.fullmatch(r"\d+(,\d+)*", visible), (rules, visible)
        else:
            assert "gpu" not in info.get("JOB_GRES", ""), (rules, info.get("JOB_GRES"))
            assert visible == "unset", (rules, visible)
    return remote, gpu_rules


def test_training_and_after_through_slurm(slurm_cluster, tiny_run, tmp_path, monkeypatch):
    """The same checks as the whole demo's (below, opt-in) on fewer jobs: a copy of the shared
    tiny run retrains through SLURM with the profile, so the training (a GPU job), inference
    (GPU group jobs of 3 subjects) and the training report (a CPU job) run there, the reports
    and tables as localrules."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    monkeypatch.delenv("VOXSEQ_SLURM_ACCOUNT", raising=False)
    work = copy_run(tiny_run, tmp_path / "run")
    weights = work / "models/tiny/imaging/weights.safetensors"
    before = weights.stat().st_mtime_ns
    run_snakemake(work, "--configfile", *TINY_RUN, "--profile", str(PROFILE), *CLUSTER_ARGS,
                  *batch_args(), "--forcerun", "imaging_train", timeout=RUN_TIMEOUT_S)
    assert weights.stat().st_mtime_ns > before
    remote, gpu_rules = check_slurm_jobs(work, slurm_cluster)
    assert {j.rule for j in remote} >= {"imaging_train", "imaging_infer",
                                        "imaging_report_training"}, remote
    assert sum(j.rule == "imaging_infer" for j in remote) == 6, remote
    assert gpu_rules >= {"imaging_train", "imaging_infer"}, gpu_rules


@pytest.mark.slow  # 130 s; test_training_and_after_through_slurm makes the same checks
def test_tiny_demo_through_slurm(slurm_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    monkeypatch.delenv("VOXSEQ_SLURM_ACCOUNT", raising=False)
    t0 = time.monotonic()
    run_snakemake(
        tmp_path,
        "--configfile",
        str(TINY),
        "--profile",
        str(PROFILE),
        *CLUSTER_ARGS,
        *batch_args(),
        timeout=RUN_TIMEOUT_S,
    )
    elapsed = time.monotonic() - t0
    for out in ("results/tiny/summary.json", "results/tiny/imaging/cohort.tsv"):
        assert (tmp_path / out).is_file(), out
    remote, gpu_rules = check_slurm_jobs(tmp_path, slurm_cluster)
    assert gpu_rules >= {"imaging_train", "imaging_infer"}, gpu_rules
    assert elapsed < RUN_TIMEOUT_S, elapsed
    print(
        f"SLURM run: {elapsed:.0f} s, {len(remote)} jobs through SLURM, "
        f"GPU rules {sorted(gpu_rules)}; SLURM_CONF={os.environ['SLURM_CONF']}"
    )


def gres_profile(dest: Path) -> Path:
    """A copy of the profile with its ``--gres=gpu:N`` SITE switch on (``# GRES:`` uncommented)."""
    text, n = re.subn(r"(?m)^(\s*)# GRES: ", r"\1", (PROFILE / "profile.yaml").read_text())
    assert n >= 2, "no '# GRES:' lines in the profile"
    dest.mkdir()
    (dest / "profile.yaml").write_text(text)
    return dest


def allocated_gpus(info: dict[str, str]) -> int:
    """GPUs in a job's allocation (``JOB_GRES=gpu:2`` or ``gpu:<type>:2(IDX:0-1)``)."""
    m = re.match(r"gpu(?::[^:(,]+)?:(\d+)", info.get("JOB_GRES", ""))
    return int(m.group(1)) if m else 0


@pytest.mark.slow  # 85 s; data-parallel training through the workflow is tests/test_ddp.py's
def test_training_with_two_gpus_through_slurm(slurm_cluster, tmp_path, monkeypatch):
    """``imaging.train.gpus: 2``: one SLURM job with 2 GPUs, 2 x cpus_per_gpu CPUs and memory for
    as many threads, with ``--gpus=2`` (the profile) and with ``--gres=gpu:2`` (its SITE switch)."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    monkeypatch.delenv("VOXSEQ_SLURM_ACCOUNT", raising=False)
    gpus = 2
    extra = tmp_path / "gpus.yaml"
    extra.write_text(yaml.safe_dump({"imaging": {"train": {"gpus": gpus}}}))
    configs = ("--configfile", str(TINY), str(extra))
    work = tmp_path / "work"
    work.mkdir()
    # Everything upstream of the training runs here (no SLURM), once for both submissions.
    run_snakemake(work, *configs, "--cores", "2", "--omit-from", "imaging_train",
                  timeout=RUN_TIMEOUT_S)  # fmt: skip
    train_res = read_profile()["set-resources"]["imaging_train"]
    per_gpu = int(train_res["cpus_per_gpu"])
    cpus = gpus * per_gpu

    def mem_for(threads: int) -> int:  # the profile's memory expression, first attempt
        return int(eval(str(train_res["mem_mb"]), {"threads": threads, "attempt": 1}))

    mem = mem_for(cpus)
    assert mem == gpus * mem_for(per_gpu), "memory does not scale with the GPUs"
    train_log = work / "results/tiny/logs/imaging/train.log"
    timings = {}
    for switch, profile in (("gpus", PROFILE), ("gres", gres_profile(tmp_path / "slurm_gres"))):
        t0 = time.monotonic()
        train_log.unlink(missing_ok=True)
        run_snakemake(work, *configs, "--profile", str(profile), *CLUSTER_ARGS,
                      "--until", "imaging_train", "--forcerun", "imaging_train",
                      timeout=RUN_TIMEOUT_S)  # fmt: skip
        timings[switch] = time.monotonic() - t0
        log = sorted((work / ".snakemake" / "log").glob("*.snakemake.log"))[-1]
        jobs, subs = parse_log(log.read_text(), members_of=slurm_log_members)
        assert [j.rule for j in jobs if not j.local] == ["imaging_train"], (switch, jobs)
        assert len(subs) == 1 and len(subs[0].jobs) == 1, (switch, subs)
        sub, job = subs[0], subs[0].jobs[0]
        assert job.resources.get("gpu") == ("0" if switch == "gres" else str(gpus)), job
        assert job.threads == str(cpus) and job.resources["mem_mb"] == str(mem), job
        info = slurm_cluster.job(sub.slurm_id)
        assert info.get("JobState") == "COMPLETED", (switch, info)
        assert info.get("Partition") == job.resources["slurm_partition"], (switch, info)
        # what was asked: --gpus=2 (a per-job GPU count) or --gres=gpu:2 (per node)
        asked = info.get("TresPerJob") if switch == "gpus" else info.get("TresPerNode")
        assert asked == f"gres:gpu:{gpus}", (switch, info)
        if switch == "gres":
            assert "TresPerJob" not in info, info  # no --gpus beside --gres
        # what was given: 2 GPUs, their CPUs, memory for all of them
        assert allocated_gpus(info) == gpus, (switch, info.get("JOB_GRES"))
        assert int(info["NumCPUs"]) == cpus, (switch, info.get("NumCPUs"))
        assert slurm_mb(info.get("MinMemoryNode")) == mem, (switch, info.get("MinMemoryNode"))
        visible = prolog_gpus(slurm_log_of(sub, work / ".snakemake" / "slurm_logs"))
        assert len(visible.split(",")) == gpus, (switch, visible)
        # the job trained with 2 data-parallel processes (gloo on the CPU: no CUDA here)
        assert (work / "results/tiny/imaging/train/metrics.tsv").is_file()
        assert re.search(rf"data-parallel training: {gpus} processes", train_log.read_text()), (
            switch, train_log.read_text()[-2000:])  # fmt: skip
    print(f"gpu={gpus} training through SLURM: " +
          ", ".join(f"--{k}: {v:.0f} s" for k, v in timings.items()))  # fmt: skip
