"""A throwaway one-node SLURM cluster on localhost, for tests.

The cluster lives in one temporary folder: a fresh munge key and socket, a minimal
``slurm.conf`` (``select/cons_tres``, ``proctrack/linuxproc``, ``task/none``, no accounting),
a ``gres.conf`` that advertises fake GPUs (character devices that point at ``/dev/null``), and
the state, spool and log folders. Free TCP ports are picked for ``slurmctld`` and ``slurmd``, so
the cluster neither uses nor disturbs a SLURM that may already run on the machine. Clients
(``sbatch``, ``squeue``, ``scontrol`` and therefore Snakemake's SLURM executor) find it through
the ``SLURM_CONF`` variable in :attr:`SlurmCluster.env`.

Every job prints ``voxseq-slurm-test CUDA_VISIBLE_DEVICES=<value or unset>`` into its SLURM log
(a ``TaskProlog``), so a test can show that GPU jobs, and only they, were given a GPU.

Usage::

    ensure_slurm_installed()            # raises SlurmUnavailable with the reason
    with local_slurm_cluster(partitions=("cpu", "gpu")) as cluster:
        subprocess.run(["sbatch", "--wrap", "true"], env=cluster.env)

The daemons are started by this module and stopped by their own process ids; nothing else
is touched. Needs root (daemons, ``apt-get``, device nodes).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: Debian packages of a one-node cluster and the programs each one provides.
PACKAGES: dict[str, tuple[str, ...]] = {
    "slurmctld": ("slurmctld",),
    "slurmd": ("slurmd",),
    "slurm-client": ("sbatch", "squeue", "scontrol", "sinfo", "scancel"),
    "munge": ("munged", "munge", "unmunge"),
}
#: Marker that the task prolog writes into every job's log.
PROLOG_TAG = "voxseq-slurm-test"
#: Where SLURM clients look when ``SLURM_CONF`` is unset. The SLURM executor's job step drops
#: ``SLURM_*`` variables before its nested ``srun``, so the cluster links its slurm.conf here
#: while it runs (only when nothing is there yet) and removes the link when it stops.
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
_SBIN = ("/usr/sbin", "/sbin")
_TMP_PREFIX = "voxseq-slurm-"


class SlurmUnavailable(RuntimeError):
    """The SLURM packages are missing and cannot be installed; the message says why."""


class SlurmStartError(RuntimeError):
    """The cluster's daemons did not come up; the message holds their logs."""


def _which(program: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
    return shutil.which(program, path=path)


def missing_packages() -> list[str]:
    """The packages of :data:`PACKAGES` whose programs are not installed."""
    return [pkg for pkg, programs in PACKAGES.items() if not all(map(_which, programs))]


def ensure_slurm_installed(timeout: float = 600) -> None:
    """Install SLURM and munge from the Debian archive when any of them is missing.

    ``apt-get install`` runs first on the existing package lists; only when it fails does
    ``apt-get update`` run before a second attempt.

    Parameters
    ----------
    timeout
        Seconds allowed to each ``apt-get`` call.

    Raises
    ------
    SlurmUnavailable
        Not root, no ``apt-get``, or the packages cannot be installed (with apt's message).
    """
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable(f"SLURM packages {missing} missing and not running as root")
    apt = shutil.which("apt-get")
    if apt is None:
        raise SlurmUnavailable(f"SLURM packages {missing} missing and no apt-get on this machine")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "--no-install-recommends", *PACKAGES]

    def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        log.info("running %s", " ".join(cmd))
        try:
            return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise SlurmUnavailable(f"{' '.join(cmd)} timed out after {timeout} s") from exc

    res = _run(install)
    if res.returncode != 0:
        update = _run([apt, "update"])
        if update.returncode != 0:
            raise SlurmUnavailable(
                f"apt-get install failed ({res.stderr.strip()[-500:]}) and apt-get update "
                f"failed too ({update.stderr.strip()[-500:]})"
            )
        res = _run(install)
    if res.returncode != 0 or missing_packages():
        raise SlurmUnavailable(
            f"cannot install {missing} with apt-get (exit {res.returncode}): "
            f"{(res.stderr or res.stdout).strip()[-800:]}"
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_total_mb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise SlurmStartError("cannot read MemTotal from /proc/meminfo")


@dataclass
class SlurmCluster:
    """A running one-node cluster (see :func:`local_slurm_cluster`).

    Attributes
    ----------
    root
        The temporary folder holding configuration, keys, state and daemon logs.
    env
        Environment for SLURM clients: this process's environment plus ``SLURM_CONF``.
    node
        The node name (the short host name).
    partitions
        Partition names; the first is the default partition.
    gpus
        Fake GPUs advertised by the node.
    """

    root: Path
    env: dict[str, str]
    node: str
    partitions: tuple[str, ...]
    gpus: int
    _procs: dict[str, subprocess.Popen] = field(default_factory=dict, repr=False)
    _pid_files: list[Path] = field(default_factory=list, repr=False)
    _links: list[Path] = field(default_factory=list, repr=False)

    @property
    def conf(self) -> Path:
        """The ``slurm.conf`` of this cluster."""
        return self.root / "etc" / "slurm.conf"

    def run(self, *cmd: str, timeout: float = 30, check: bool = True) -> str:
        """Run a SLURM client command against this cluster and return its stdout."""
        res = subprocess.run(
            list(cmd), env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}")
        return res.stdout

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job -d`` of one job as a dict (finished jobs stay for MinJobAge)."""
        out = self.run("scontrol", "-o", "-d", "show", "job", str(job_id))
        fields: dict[str, str] = {}
        for token in out.split():
            key, sep, value = token.partition("=")
            if sep:
                fields.setdefault(key, value)
        return fields

    def daemon_logs(self) -> str:
        """The tail of every daemon's log, for failure messages."""
        parts = []
        for path in sorted((self.root / "log").glob("*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    # ---- lifecycle ------------------------------------------------------------------------
    def _spawn(self, name: str, cmd: Sequence[str], user: str | None = None) -> None:
        out = open(self.root / "log" / f"{name}.out", "wb")  # noqa: SIM115 - closed with proc
        kwargs = {}
        if user is not None:
            kwargs = {"user": user, "group": pwd.getpwnam(user).pw_gid}
        proc = subprocess.Popen(
            list(cmd),
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kwargs,
        )
        out.close()
        self._procs[name] = proc
        log.info("started %s (pid %d)", name, proc.pid)

    def _wait(self, what: str, ready, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise SlurmStartError(
                        f"{name} exited ({proc.returncode}) while waiting for {what}\n"
                        f"{self.daemon_logs()}{self._outputs()}"
                    )
            with contextlib.suppress(subprocess.SubprocessError, RuntimeError, OSError):
                if ready():
                    return
            time.sleep(0.2)
        raise SlurmStartError(
            f"timed out after {timeout} s waiting for {what}\n{self.daemon_logs()}{self._outputs()}"
        )

    def _outputs(self) -> str:
        parts = []
        for path in sorted((self.root / "log").glob("*.out")):
            text = path.read_text(errors="replace").strip()
            if text:
                parts.append(f"\n--- {path.name}\n{text[-2000:]}")
        return "".join(parts)

    def _link_system_conf(self) -> None:
        if SYSTEM_CONF.is_symlink() and not SYSTEM_CONF.exists():
            target = os.readlink(SYSTEM_CONF)
            if Path(target).parent.parent.name.startswith(_TMP_PREFIX):
                SYSTEM_CONF.unlink()  # left behind by a run of this module that was killed
        if SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink():
            raise SlurmStartError(
                f"{SYSTEM_CONF} exists (another SLURM configuration); the test cluster needs "
                "that path, because the SLURM executor's job step runs srun without SLURM_CONF"
            )
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SYSTEM_CONF.symlink_to(self.conf)
        self._links.append(SYSTEM_CONF)

    def start(self, timeout: float = 60) -> None:
        """Start munged, then slurmctld, then slurmd, and wait until the node is idle."""
        self._link_system_conf()
        munge_dir = self.root / "munge"
        sock = munge_dir / "munge.socket.2"
        munge_user = "munge" if _user_exists("munge") else None
        self._spawn(
            "munged",
            [
                _which("munged") or "munged",
                "--foreground",
                f"--key-file={munge_dir / 'munge.key'}",
                f"--socket={sock}",
                f"--pid-file={munge_dir / 'munged.pid'}",
                f"--log-file={munge_dir / 'munged.log'}",
                f"--seed-file={munge_dir / 'munged.seed'}",
            ],
            user=munge_user,
        )
        self._pid_files.append(munge_dir / "munged.pid")
        self._wait("munged", lambda: _munge_ok(sock), timeout)

        self._spawn(
            "slurmctld", [_which("slurmctld") or "slurmctld", "-D", "-c", "-f", str(self.conf)]
        )
        self._wait("slurmctld", lambda: "UP" in self.run("scontrol", "ping", timeout=5), timeout)
        self._spawn(
            "slurmd", [_which("slurmd") or "slurmd", "-D", "-f", str(self.conf), "-N", self.node]
        )
        self._wait("slurmd", self._node_idle, timeout)

    def _node_idle(self) -> bool:
        state = self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%T", timeout=5)
        return any(s.strip() == "idle" for s in state.splitlines())

    def stop(self, timeout: float = 20) -> None:
        """Cancel this cluster's jobs, stop the daemons it started (by pid), remove pid files."""
        if self._procs.get("slurmctld") and self._procs["slurmctld"].poll() is None:
            with contextlib.suppress(Exception):
                ids = self.run("squeue", "-h", "-o", "%i", timeout=10).split()
                if ids:
                    self.run("scancel", *ids, timeout=10, check=False)
                    deadline = time.monotonic() + timeout
                    while (
                        time.monotonic() < deadline
                        and self.run(
                            "squeue",
                            "-h",
                            "-t",
                            "RUNNING,PENDING,COMPLETING",
                            "-o",
                            "%i",
                            timeout=10,
                        ).split()
                    ):
                        time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) ignored SIGTERM; killing it", name, proc.pid)
                proc.kill()
                proc.wait(timeout=timeout)
            log.info("stopped %s (pid %d)", name, proc.pid)
        for path in self._pid_files:
            path.unlink(missing_ok=True)
        for link in self._links:
            if link.is_symlink() and os.readlink(link) == str(self.conf):
                link.unlink()
        self._links.clear()


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _munge_ok(sock: Path) -> bool:
    cred = subprocess.run(
        [_which("munge") or "munge", "-n", "-S", str(sock)],
        capture_output=True,
        timeout=5,
        check=True,
    ).stdout
    res = subprocess.run(
        [_which("unmunge") or "unmunge", "-S", str(sock)],
        input=cred,
        capture_output=True,
        timeout=5,
    )
    return b"STATUS:          Success" in res.stdout or b"Success (0)" in res.stdout


def _write_config(
    root: Path, node: str, partitions: Sequence[str], cpus: int, mem_mb: int, gpus: int
) -> None:
    etc, state, spool, logs = (root / d for d in ("etc", "state", "spool", "log"))
    munge_dir = root / "munge"
    for d in (etc, state, spool, logs, munge_dir, root / "dev"):
        d.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # munged runs as the munge user and must reach its own folder

    key = munge_dir / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o400)
    if _user_exists("munge"):
        uid, gid = pwd.getpwnam("munge").pw_uid, pwd.getpwnam("munge").pw_gid
        for path in (munge_dir, key):
            os.chown(path, uid, gid)
    munge_dir.chmod(0o755)  # munged: the socket folder must be reachable by all

    devices = []
    for i in range(gpus):
        dev = root / "dev" / f"fakegpu{i}"
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # same device as /dev/null
        devices.append(dev)
    (etc / "gres.conf").write_text("".join(f"Name=gpu File={d}\n" for d in devices))

    prolog = etc / "task_prolog.sh"
    prolog.write_text(
        "#!/bin/sh\n"
        f'echo "print {PROLOG_TAG} CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES:-unset}}"\n'
    )
    prolog.chmod(0o755)

    gres = f" Gres=gpu:{gpus}" if gpus else ""
    lines = [
        "ClusterName=voxseqtest",
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={_free_port()}",
        f"SlurmdPort={_free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={munge_dir / 'munge.socket.2'}",
        f"StateSaveLocation={state}",
        f"SlurmdSpoolDir={spool}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={logs / 'slurmctld.log'}",
        f"SlurmdLogFile={logs / 'slurmd.log'}",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        f"TaskProlog={prolog}",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "MailProg=/bin/true",
        "MpiDefault=none",
        "ReturnToService=2",
        "MinJobAge=600",
        "DefMemPerCPU=1000",
        # The node advertises the CPUs and memory given, not the hardware's (a GPU job of the
        # site profile may ask for more than this machine has).
        "SlurmdParameters=config_overrides",
        "GresTypes=gpu",
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb}{gres} State=UNKNOWN",
    ]
    for i, part in enumerate(partitions):
        default = " Default=YES" if i == 0 else ""
        lines.append(f"PartitionName={part} Nodes={node}{default} MaxTime=INFINITE State=UP")
    (etc / "slurm.conf").write_text("\n".join(lines) + "\n")
    for pid_file in (root / "slurmctld.pid", root / "slurmd.pid"):
        pid_file.unlink(missing_ok=True)


@contextlib.contextmanager
def local_slurm_cluster(
    partitions: Sequence[str] = ("debug",),
    gpus: int = 2,
    cpus: int | None = None,
    mem_mb: int | None = None,
    timeout: float = 60,
) -> Iterator[SlurmCluster]:
    """Start a one-node cluster in a temporary folder; stop it and remove the folder on exit.

    Parameters
    ----------
    partitions
        Partition names, all on the one node; the first is the default.
    gpus
        Number of fake GPUs the node advertises (``gres/gpu``); 0 for none.
    cpus, mem_mb
        CPUs and memory (MB) the node advertises; default: this machine's (``nproc``,
        MemTotal - 1024). Larger values are accepted (``config_overrides``).
    timeout
        Seconds to wait for each daemon to come up.

    Yields
    ------
    SlurmCluster
        The running cluster.

    Raises
    ------
    SlurmUnavailable
        The packages are not installed (see :func:`ensure_slurm_installed`).
    SlurmStartError
        A daemon fails to start (with the daemon logs), or /etc/slurm/slurm.conf is taken.
    """
    missing = missing_packages()
    if missing:
        raise SlurmUnavailable(f"SLURM packages not installed: {missing}")
    if not partitions:
        raise ValueError("local_slurm_cluster needs at least one partition")
    node = socket.gethostname().split(".")[0]
    cpus = cpus or os.cpu_count() or 1
    mem_mb = mem_mb or max(_mem_total_mb() - 1024, 512)
    root = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX))
    cluster = SlurmCluster(
        root=root,
        env={**os.environ, "SLURM_CONF": str(root / "etc" / "slurm.conf")},
        node=node,
        partitions=tuple(partitions),
        gpus=gpus,
    )
    try:
        _write_config(root, node, partitions, cpus, mem_mb, gpus)
        cluster._pid_files += [root / "slurmctld.pid", root / "slurmd.pid"]
        t0 = time.monotonic()
        cluster.start(timeout=timeout)
        log.info("SLURM cluster up in %.1f s (%s)", time.monotonic() - t0, cluster.conf)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
