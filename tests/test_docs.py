"""Documentation checks: schema descriptions, the generated parameters page, links and anchors
in README.md and docs/, and the voice of the documentation files."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from voxseq import VoxseqError
from voxseq.genetics import subjects
from voxseq.io import sheet

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO / "workflow" / "schemas"

#: JSON Schema keywords the schemas use. Anything else in a key's mapping is a mistake, most
#: often a flow-style description cut at a comma (`{description: a, b}` makes `b` a key).
KEYWORDS = {
    "$schema", "$ref", "description", "type", "properties", "patternProperties",
    "additionalProperties", "required", "items", "minItems", "maxItems", "uniqueItems",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum", "const", "pattern",
    "oneOf", "default",
}


def schema_nodes(node: dict, path: tuple[str, ...] = ()):
    """``(path, node)`` of every key, pattern key, item and alternative of a schema."""
    yield path, node
    for key, child in node.get("properties", {}).items():
        yield from schema_nodes(child, (*path, key))
    for key, child in node.get("patternProperties", {}).items():
        yield from schema_nodes(child, (*path, key))
    if isinstance(node.get("items"), dict):
        yield from schema_nodes(node["items"], (*path, "[]"))
    for i, alt in enumerate(node.get("oneOf", [])):
        yield from schema_nodes(alt, (*path, f"oneOf[{i}]"))


def schema_files() -> list[Path]:
    return sorted(SCHEMAS.glob("*.schema.yaml"))


@pytest.mark.parametrize("path", schema_files(), ids=lambda p: p.name)
def test_every_key_has_a_description_and_a_type(path):
    schema = yaml.safe_load(path.read_text())
    missing, untyped, unknown = [], [], []
    keys = [(p, n) for p, n in schema_nodes(schema) if p and p[-1] != "[]"
            and not p[-1].startswith("oneOf")]
    for p, node in keys:
        name = ".".join(p)
        if not str(node.get("description", "")).strip():
            missing.append(name)
        if not any(k in node for k in ("type", "$ref", "oneOf", "const", "enum")):
            untyped.append(name)
    for p, node in schema_nodes(schema):
        bad = sorted(set(node) - KEYWORDS)
        if bad:
            unknown.append(f"{'.'.join(p) or '<root>'}: {bad}")
    assert not missing, f"{path.name}: keys without a description: {missing}"
    assert not untyped, f"{path.name}: keys without a type: {untyped}"
    assert not unknown, f"{path.name}: unknown schema keywords (a cut description?): {unknown}"


def test_schema_checker_finds_a_cut_description():
    cut = yaml.safe_load(
        "properties:\n  a: {type: integer, description: one, two}\n  b: {type: number}"
    )
    nodes = dict(schema_nodes(cut))
    assert set(nodes[("a",)]) - KEYWORDS == {"two"}
    assert "description" not in nodes[("b",)]


def test_sample_sheet_schema_agrees_with_the_reader():
    schema = yaml.safe_load((SCHEMAS / "samples.schema.yaml").read_text())
    props = schema["properties"]
    assert set(sheet.COLUMNS) <= set(props), set(sheet.COLUMNS) - set(props)
    assert props["subject"]["pattern"] == sheet.SUBJECT_PATTERN
    assert props["split"]["enum"] == ["", *sheet.SPLITS]
    channel_pattern = sheet.CHANNEL_COLUMN_RE.pattern.replace("(", "").replace(")", "")
    assert channel_pattern in schema["patternProperties"]
    covariates = subjects.COVARIATE_RE.pattern  # ^(age|sex|covar_<name>)$
    assert {"age", "sex"} <= set(props) and "age|sex|" in covariates
    assert "^" + covariates.split("|", 2)[2].removesuffix(")$") + "$" in schema["patternProperties"]
    sex = re.compile(props["sex"]["pattern"])
    assert all(sex.match(v) for v in ["", *subjects.SEX_VALUES, "MALE", "F"])
    assert not sex.match("x")


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parameters_page_is_fresh():
    make = _load_script("make_parameters")
    committed = (REPO / "docs" / "parameters.md").read_text()
    assert committed == make.render(), (
        "docs/parameters.md is stale: run `python docs/make_parameters.py`"
    )


def test_parameters_page_lists_every_key():
    make = _load_script("make_parameters")
    text = make.render()
    for name, prefix in (("config", ""), ("imaging", "imaging."), ("genomics", "genomics.")):
        schema = yaml.safe_load((SCHEMAS / f"{name}.schema.yaml").read_text())
        for path, _ in make.leaves(schema):
            assert f"| `{prefix}{'.'.join(path)}` |" in text
    assert "| `epochs` |" in text and "| `subject` |" in text


# ---------------------------------------------------------------------------------------------
# Links and anchors

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[`*_]{1,2}(?=\S)|(?<=\S)[`*_]{1,2}", "", heading.strip()).lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (duplicates numbered as GitHub does)."""
    seen: dict[str, int] = {}
    out = set()
    text = FENCE.sub("", path.read_text())
    for line in text.splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = github_anchor(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    out |= set(re.findall(r'<a (?:name|id)="([^"]+)"', text))
    return out


def doc_files() -> list[Path]:
    files = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    return [f for f in files if f.is_file()]


def broken_links(path: Path) -> list[str]:
    """Relative links of a Markdown file whose file or heading anchor does not exist.

    Links to images generated by docs/make_images.py count when the script names them."""
    text = FENCE.sub("", path.read_text())
    script = REPO / "docs" / "make_images.py"
    generated = script.read_text() if script.is_file() else ""
    bad = []
    for m in LINK.finditer(text):
        target = m.group(1) or m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:, file:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            rel = dest.relative_to(REPO) if dest.is_relative_to(REPO) else dest
            if not (str(rel).startswith("docs/images/") and Path(rel).name in generated):
                bad.append(f"{target} (no file {rel})")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target} (no heading #{anchor} in {dest.name})")
    return bad


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_and_anchors_resolve(path):
    bad = broken_links(path)
    assert not bad, f"{path.relative_to(REPO)}: broken links: {bad}"


def test_link_checker_finds_broken_links(tmp_path):
    (tmp_path / "usage.md").write_text("# Usage\n\n## X and `y`\n\n```\n# not a heading\n```\n")
    probe = tmp_path / "probe.md"
    probe.write_text("# Top\n\n[ok](#top) [bad](#nowhere) [gone](nope.md) [u](usage.md#x-and-y)"
                     " [f](usage.md#not-a-heading) ![i](images/rulegraph.png)"
                     " [web](https://example.org/x.md)\n")
    bad = broken_links(probe)
    assert bad == ["#nowhere (no heading #nowhere in probe.md)",
                   f"nope.md (no file {tmp_path / 'nope.md'})",
                   "usage.md#not-a-heading (no heading #not-a-heading in usage.md)",
                   f"images/rulegraph.png (no file {tmp_path / 'images/rulegraph.png'})"]


def test_github_anchor():
    assert github_anchor("Your own cohort") == "your-own-cohort"
    assert github_anchor("Reruns and `resume`") == "reruns-and-resume"
    assert github_anchor("Several GPUs (`gpu=N`)") == "several-gpus-gpun"
    assert github_anchor("imaging/qc/qc.tsv") == "imagingqcqctsv"


def test_make_images_copies_every_stage_figure(tmp_path):
    make = _load_script("make_images")
    results, out = tmp_path / "results", tmp_path / "images"
    for name, (pattern, _) in make.FIGURES.items():
        src = results / pattern.replace("*", "s001")
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_bytes(name.encode())
    written = make.copy_figures(results, out)
    assert sorted(p.name for p in written) == sorted(make.FIGURES)
    assert (out / "overlay.png").read_bytes() == b"overlay.png"
    (results / "genomics/report/motif_logos.png").unlink()
    (results / "imaging/report/overlays/s001.png").unlink()
    with pytest.raises(VoxseqError, match="motif_logos.png: not found") as err:
        make.copy_figures(results, tmp_path / "again")
    assert "overlays/*.png" in str(err.value)
    assert not (tmp_path / "again").exists() or not any((tmp_path / "again").iterdir())


def test_docs_show_every_generated_image():
    make = _load_script("make_images")
    shown = "".join(p.read_text() for p in doc_files())
    for name in [*make.FIGURES, make.RESULTS_PAGE, make.RULEGRAPH]:
        assert f"images/{name})" in shown, name


# ---------------------------------------------------------------------------------------------
# Voice: the documentation describes the project, not the history of one working session.

VOICE_FILES = [
    "README.md", "CHANGELOG.md", "CITATIONS.md", "config/README.md", "config/config.yaml",
    "config/new_cohort.yaml", "benchmarks/README.md", "profiles/README.md",
]
BANNED = re.compile(
    r"this stop|the day before|before this work|\bissue\s*#?\s*\d+|(?<![\w&])#\d+\b", re.I
)


def voice_files() -> list[Path]:
    files = [REPO / f for f in VOICE_FILES] + sorted((REPO / "docs").rglob("*.md"))
    return [f for f in files if f.is_file()]


@pytest.mark.parametrize("path", voice_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_lab_notebook_phrases(path):
    hits = [f"{i}: {line.strip()}" for i, line in enumerate(path.read_text().splitlines(), 1)
            if BANNED.search(line)]
    assert not hits, f"{path.relative_to(REPO)}: {hits}"


def test_banned_pattern():
    for text in ("on this stop's code", "(issue 14)", "see #12", "Issue #5"):
        assert BANNED.search(text), text
    for text in ("a 120 kb duplication", "colour #fff", "`--gpus=N`", "&#8212;"):
        assert not BANNED.search(text), text
