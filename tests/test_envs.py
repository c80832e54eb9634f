"""Static checks of the per-rule conda envs (conda channels are unreachable here).

The rules are read from the parsed workflow (Snakemake's API, in a subprocess), not from the
text of the .smk files, so rules added later (or defined only under some config) are covered:
the workflow is loaded with the default config (demo, both tracks, training) and with every
test config under tests/config that loads on its own, and the rules found under any of them are
checked.

For every rule that runs something:
- it has a ``conda:`` directive and the env file exists, parses as YAML, uses only the channels
  conda-forge, bioconda, nodefaults (in that order; nodefaults last) and pins every dependency;
- every third-party module imported by its script, and transitively by the voxseq modules the
  script imports (package ``__init__`` files included, imports inside functions too), is
  provided by a package of that env (import names mapped to conda names: torch -> pytorch,
  yaml -> pyyaml, ...). Imports guarded by ``try/except ImportError`` or ``TYPE_CHECKING``
  are optional and not required.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml
from conftest import REPO

CHANNEL_ORDER = ("conda-forge", "bioconda", "nodefaults")
#: Import name -> conda package names that provide it (default: the lower-cased import name,
#: with ``_`` also tried as ``-``).
CONDA_NAMES: dict[str, set[str]] = {
    "torch": {"pytorch", "pytorch-gpu", "pytorch-cpu"},
    "yaml": {"pyyaml"},
    "pyBigWig": {"pybigwig"},
    "matplotlib": {"matplotlib", "matplotlib-base"},
    "mpl_toolkits": {"matplotlib", "matplotlib-base"},
    "PIL": {"pillow"},
    "sklearn": {"scikit-learn"},
    "skimage": {"scikit-image"},
    "cv2": {"opencv", "py-opencv"},
    "Bio": {"biopython"},
    "SimpleITK": {"simpleitk"},
    "google": {"protobuf"},
    "tensorboard": {"tensorboard"},
    "pkg_resources": {"setuptools"},
}
#: Modules that Snakemake provides to a script (never imported from the env).
PROVIDED = {"snakemake"}
_DUMP_RULES = r"""
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.enums import Quietness
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

snakefile, workdir, *configfiles = sys.argv[1:]
for configfile in configfiles:
    rules = []
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            wf = api.workflow(
                resource_settings=ResourceSettings(),
                config_settings=ConfigSettings(configfiles=[Path(configfile)]),
                snakefile=Path(snakefile),
                workdir=Path(workdir),
            )
            for rule in wf._workflow.rules:
                base = Path(str(rule.basedir))
                env = rule.conda_env if isinstance(rule.conda_env, str) else None
                rules.append({
                    "name": rule.name,
                    "norun": bool(rule.norun),
                    "conda": str(base / env) if env else None,
                    "script": str(base / rule.script) if rule.script else None,
                    "defined_in": str(rule.snakefile),
                })
        error = None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    print("RULES-JSON " + json.dumps({"config": configfile, "rules": rules, "error": error}))
"""


DEFAULT_CONFIG = REPO / "config" / "config.yaml"


def _test_configs() -> list[Path]:
    """Test configs that look standalone (a cohort and a track block)."""
    out = []
    for path in sorted((REPO / "tests" / "config").glob("*.yaml")):
        keys = set(yaml.safe_load(path.read_text()) or {})
        if "cohort" in keys and keys & {"imaging", "genomics"}:
            out.append(path)
    return out


@pytest.fixture(scope="module")
def workflow_rules(tmp_path_factory) -> dict[str, dict]:
    """Every rule defined under the default config or a test config, by name.

    The default config must load; a test config that cannot load on its own (it needs files
    that an earlier run writes, e.g. a model bundle) is left out.
    """
    tmp = tmp_path_factory.mktemp("envs")
    configs = [DEFAULT_CONFIG, *_test_configs()]
    res = subprocess.run(
        [sys.executable, "-c", _DUMP_RULES, str(REPO / "Snakefile"), str(tmp), *map(str, configs)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp,
    )
    loaded = [
        json.loads(ln.removeprefix("RULES-JSON "))
        for ln in res.stdout.splitlines()
        if ln.startswith("RULES-JSON ")
    ]
    by_config = {item["config"]: item for item in loaded}
    default = by_config.get(str(DEFAULT_CONFIG))
    if default is None or default["error"]:
        detail = default["error"] if default else res.stderr[-3000:]
        raise AssertionError(f"cannot load the workflow with {DEFAULT_CONFIG}: {detail}")
    rules: dict[str, dict] = {}
    for item in loaded:
        for rule in item["rules"]:
            rules.setdefault(rule["name"], rule)
    return rules


def _runs_something(rule: dict) -> bool:
    return not rule["norun"]


# ---- env files ------------------------------------------------------------------------------
_DEP = re.compile(r"^\s*(?:[\w.-]+::)?([A-Za-z0-9_.-]+)\s*(.*)$")


@cache
def read_env(path: str) -> dict:
    """Parse an env file; return ``{"channels": [...], "packages": {name: spec}}``."""
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict):
        raise AssertionError(f"{path}: not a YAML mapping")
    packages: dict[str, str] = {}
    for dep in data.get("dependencies") or []:
        if isinstance(dep, dict):  # a pip: [...] block
            for pip_dep in dep.get("pip", []):
                name, _, spec = str(pip_dep).partition("==")
                packages[name.strip().lower()] = f"=={spec}" if spec else ""
            continue
        m = _DEP.match(str(dep))
        if m is None:
            raise AssertionError(f"{path}: cannot read dependency {dep!r}")
        packages[m.group(1).lower()] = m.group(2).strip()
    return {"channels": list(data.get("channels") or []), "packages": packages}


def env_problems(path: str) -> list[str]:
    """What is wrong with one env file (empty when it is fine)."""
    env = read_env(path)
    problems = []
    chans = env["channels"]
    if not chans or chans[0] != "conda-forge" or chans[-1] != "nodefaults":
        problems.append(f"channels {chans}: conda-forge first and nodefaults last")
    known = [c for c in chans if c in CHANNEL_ORDER]
    if known != chans or chans != sorted(chans, key=CHANNEL_ORDER.index):
        problems.append(f"channels {chans}: only {list(CHANNEL_ORDER)}, in that order")
    if "python" not in env["packages"]:
        problems.append("no python")
    for name, spec in env["packages"].items():
        if not re.match(r"^(==?)\s*\d", spec):
            problems.append(f"{name}: version not pinned ({spec or 'no version'})")
    return problems


# ---- imports --------------------------------------------------------------------------------
def _optional_nodes(tree: ast.AST) -> set[int]:
    """Ids of import nodes under ``try: ... except ImportError`` or ``if TYPE_CHECKING:``."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        guarded: list[ast.stmt] = []
        if isinstance(node, ast.Try):
            names = set()
            for h in node.handlers:
                for t in [h.type] if not isinstance(h.type, ast.Tuple) else h.type.elts:
                    names.add(getattr(t, "id", getattr(t, "attr", "")))
            if names & {"ImportError", "ModuleNotFoundError"}:
                guarded = node.body
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded = node.body
        for stmt in guarded:
            skip.update(id(n) for n in ast.walk(stmt))
    return skip


@cache
def module_imports(path: Path) -> tuple[frozenset[str], frozenset[str]]:
    """``(third-party top-level names, voxseq module names)`` imported by one file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    optional = _optional_nodes(tree)
    third, ours = set(), set()
    package = _module_name(path)
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import inside voxseq
                base = package.split(".")[: -node.level] if package else []
                mod = ".".join([*base, node.module] if node.module else base)
                names = [mod] + [f"{mod}.{a.name}" for a in node.names]
            else:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top == "voxseq":
                ours.add(name)
            elif top not in sys.stdlib_module_names and top not in PROVIDED and top != "__future__":
                third.add(top)
    return frozenset(third), frozenset(ours)


def _module_name(path: Path) -> str:
    try:
        rel = path.resolve().relative_to(REPO)
    except ValueError:
        return ""
    parts = list(rel.with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) if parts and parts[0] == "voxseq" else ""


def _voxseq_files(name: str) -> list[Path]:
    """Files executed by ``import name`` (packages' ``__init__`` first); [] if not a module."""
    parts = name.split(".")
    files = []
    for i in range(1, len(parts) + 1):
        base = REPO.joinpath(*parts[:i])
        if (base / "__init__.py").is_file():
            files.append(base / "__init__.py")
        elif base.with_suffix(".py").is_file():
            files.append(base.with_suffix(".py"))
        else:
            break  # an attribute (from voxseq.x import function), not a module
    return files


def third_party_imports(script: Path) -> dict[str, list[str]]:
    """Third-party top-level modules reachable from a script -> the files that import them."""
    found: dict[str, list[str]] = {}
    todo, seen = [script], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        third, ours = module_imports(path)
        for name in third:
            found.setdefault(name, []).append(str(path.relative_to(REPO)))
        for name in ours:
            todo.extend(_voxseq_files(name))
    return found


def provided_by(module: str, packages: set[str]) -> bool:
    """Whether one of ``packages`` (conda names) provides the import name ``module``."""
    names = CONDA_NAMES.get(module, {module.lower(), module.lower().replace("_", "-")})
    return bool(names & packages)


# ---- tests ----------------------------------------------------------------------------------
def test_import_scan_follows_voxseq_modules():
    found = third_party_imports(REPO / "scripts" / "imaging_normalise.py")
    assert "zarr" in found and "numpy" in found, found  # via voxseq.imaging.normalise -> store
    assert "snakemake" not in found and "voxseq" not in found
    assert provided_by("torch", {"pytorch"}) and provided_by("yaml", {"pyyaml"})
    assert not provided_by("torch", {"numpy"})


def test_env_parser_flags_unpinned_and_channels(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("channels: [defaults, conda-forge]\ndependencies: [python =3.11, numpy]\n")
    problems = env_problems(str(bad))
    assert any("numpy" in p for p in problems) and any("channels" in p for p in problems)


def test_workflow_rules_found(workflow_rules):
    names = set(workflow_rules)
    assert {"imaging_ingest", "imaging_train", "imaging_infer"} <= names, sorted(names)


def test_every_rule_has_a_conda_env(workflow_rules):
    missing = [r["name"] for r in workflow_rules.values() if _runs_something(r) and not r["conda"]]
    assert not missing, f"rules without a conda: directive: {missing}"
    absent = {
        r["name"]: r["conda"]
        for r in workflow_rules.values()
        if r["conda"] and not Path(r["conda"]).is_file()
    }
    assert not absent, f"conda env files not found: {absent}"


def test_env_files_are_pinned(workflow_rules):
    envs = sorted({r["conda"] for r in workflow_rules.values() if r["conda"]})
    envs += [str(p) for p in sorted((REPO / "envs").glob("*.yaml")) if str(p) not in envs]
    problems = {Path(e).name: p for e in envs if (p := env_problems(e))}
    assert not problems, f"env files: {json.dumps(problems, indent=1)}"


def test_rule_envs_provide_script_imports(workflow_rules):
    problems = {}
    for rule in sorted(workflow_rules.values(), key=lambda r: r["name"]):
        if not rule["script"] or not rule["conda"] or not Path(rule["conda"]).is_file():
            continue
        script = Path(rule["script"])
        if script.suffix != ".py":
            continue
        packages = set(read_env(rule["conda"])["packages"])
        for module, via in sorted(third_party_imports(script).items()):
            if not provided_by(module, packages):
                problems.setdefault(rule["name"], []).append(
                    f"{module} (imported by {', '.join(sorted(set(via)))}) "
                    f"not in {Path(rule['conda']).name}"
                )
    assert not problems, "rule envs miss imported packages:\n" + "\n".join(
        f"  {name}: {'; '.join(p)}" for name, p in problems.items()
    )
