"""Config checks at DAG-building time: the JSON schemas (:func:`validate_config`), settings a
schema cannot express (:func:`check_config`) and the requested devices (:func:`check_devices`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from voxseq import VoxseqError
from voxseq.io.sheet import split_fractions

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

MODALITIES = ("imaging", "genomics")


def check_config(config: dict) -> None:
    """Raise :class:`VoxseqError` naming the key and values for inconsistent settings."""
    img, gen = config.get("imaging", {}), config.get("genomics", {})
    splits = config.get("splits")
    if isinstance(splits, dict) and all(isinstance(v, int | float) for v in splits.values()):
        try:
            split_fractions(splits)
        except VoxseqError as exc:
            raise VoxseqError(
                f"{exc}. A split missing from a --configfile's splits block is taken from the "
                "default config (config/config.yaml) when the configs are merged key by key: "
                "write all three"
            ) from None
    for m, block in (("imaging", img), ("genomics", gen)):
        train = block.get("train") or {}
        gpus, batch = train.get("gpus", 1), train.get("batch_size", 1)
        integers = isinstance(gpus, int) and isinstance(batch, int)
        if block.get("enabled") and integers and batch % gpus:
            raise VoxseqError(
                f"config {m}.train.batch_size {batch} does not divide by {m}.train.gpus {gpus}: "
                "the batch is the global one, split evenly over the data-parallel processes"
            )
    if img.get("enabled"):
        depth = img.get("model", {}).get("depth", 3)
        factor = 2 ** (depth - 1)
        bad = [p for p in img["patch_size"] if p % factor]
        if bad:
            raise VoxseqError(
                f"config imaging.patch_size {img['patch_size']}: every size must be divisible by "
                f"2**(model.depth - 1) = {factor} (imaging.model.depth = {depth})"
            )
        if len(img.get("labels", [])) < 2:
            raise VoxseqError("config imaging.labels: need background and at least one label")
    if gen.get("enabled"):
        window, bin_size = gen.get("window"), gen.get("bin_size")
        if window and bin_size and window % bin_size:
            raise VoxseqError(
                f"config genomics.bin_size {bin_size} does not divide genomics.window {window}"
            )
        stride = gen.get("stride")
        if stride and bin_size and stride % bin_size:
            raise VoxseqError(
                f"config genomics.stride {stride} is not a multiple of genomics.bin_size "
                f"{bin_size}: window targets would not line up with the coverage bins"
            )
        if stride and window and stride > window:
            raise VoxseqError(
                f"config genomics.stride {gen['stride']} is larger than genomics.window {window}: "
                "parts of the genome would never be seen"
            )
        overlap = set(gen.get("val_contigs") or []) & set(gen.get("test_contigs") or [])
        if overlap:
            raise VoxseqError(
                f"config genomics: contigs {sorted(overlap)} are in both val_contigs and "
                "test_contigs"
            )


def user_splits(
    config: dict, configfiles: Sequence[str | Path] = (), overrides: dict | None = None
) -> dict[str, float] | None:
    """The ``splits`` block as the user wrote it, whole, never merged key by key with another.

    Snakemake updates the default config with each ``--configfile`` (then ``--config``) one key
    at a time, so ``splits: {train: 0.8, val: 0.2}`` would keep the default's ``test``. This
    takes the block of the last source that has one: ``overrides`` (``--config``), else the
    last of ``configfiles`` (the ``--configfile`` files, in order), else ``config`` (the
    default). A split it leaves out is 0 (:func:`voxseq.io.sheet.split_fractions`).

    Returns
    -------
    dict or None
        The block (None when no source has one).
    """
    if overrides and isinstance(overrides.get("splits"), dict):
        return dict(overrides["splits"])
    for path in reversed([Path(p) for p in configfiles]):
        loaded = load_config_file(path) if path.is_file() else None
        if isinstance(loaded, dict) and isinstance(loaded.get("splits"), dict):
            return dict(loaded["splits"])
    block = config.get("splits")
    return dict(block) if isinstance(block, dict) else None


def load_config_file(path: str | Path) -> dict:
    """Load a YAML (or JSON) config file, naming the file, line and column of a syntax error.

    Snakemake reads ``--configfile`` files itself, before any workflow code runs, and its
    error names no file; this is for tools that read a config first (and for checking one:
    ``python -c "from voxseq.config import load_config_file; load_config_file('my.yaml')"``).

    Raises
    ------
    VoxseqError
        The file is missing, is not valid YAML (a tab in the indentation is named as such), or
        is not a mapping of keys at its top level.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise VoxseqError(f"config file {path}: cannot be read ({exc})") from exc
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        line = text.splitlines()[mark.line] if mark and mark.line < len(text.splitlines()) else ""
        tab = "\t" in line[: len(line) - len(line.lstrip())] or (
            mark is not None and "\t" in str(getattr(exc, "problem", ""))
        )
        hint = " (a tab in the indentation: YAML indents with spaces only)" if tab else ""
        raise VoxseqError(
            f"config file {path}{where}: not valid YAML{hint}: {getattr(exc, 'problem', exc)}"
        ) from None
    if not isinstance(loaded, dict):
        raise VoxseqError(f"config file {path}: must hold keys at its top level (a mapping)")
    return loaded


def check_devices(config: dict) -> None:
    """Refuse a ``cuda`` training device on a machine without CUDA.

    For each enabled modality whose ``train.device`` starts with ``cuda``, torch is imported
    (only then) and asked whether CUDA, and the device index, exist.

    Raises
    ------
    VoxseqError
        Naming the key, the device and what to use instead.
    """
    for m in MODALITIES:
        block = config.get(m) or {}
        device = str((block.get("train") or {}).get("device", "auto"))
        if not (block.get("enabled") and device.startswith("cuda")):
            continue
        import torch

        key = f"config {m}.train.device: {device!r} requested but this machine"
        if not torch.cuda.is_available():
            raise VoxseqError(
                f"{key} has no CUDA device (torch.cuda.is_available() is False); use auto or cpu"
            )
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise VoxseqError(
                f"{key} has {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})"
            )


def _load_schemas(schema_dir: Path) -> dict[str, dict]:
    names = ("config", "imaging", "genomics", "train")
    out = {}
    for name in names:
        path = schema_dir / f"{name}.schema.yaml"
        if not path.is_file():
            raise VoxseqError(f"config schema {path}: file not found")
        out[name] = yaml.safe_load(path.read_text())
    return out


def _error_message(prefix: str, error: ValidationError) -> str:
    """``config <full.dotted.path>: <problem>`` for one jsonschema error; a missing or unknown
    key is named in the path (``config imaging.foo: unknown key``)."""
    path = [prefix, *(str(p) for p in error.absolute_path)]
    instance = error.instance
    keys: list[str] = []
    if error.validator == "required" and isinstance(instance, dict):
        keys = [k for k in error.validator_value if k not in instance]
        problem = "required key missing"
    elif error.validator == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {})
        keys = sorted(str(k) for k in instance if k not in known)
        problem = f"unknown key (allowed: {', '.join(known)})"
    if keys:
        also = f"; also {', '.join(keys[1:])}" if len(keys) > 1 else ""
        return f"config {'.'.join(p for p in [*path, keys[0]] if p)}: {problem}{also}"
    where = ".".join(p for p in path if p)
    return f"config {where or '(top level)'}: {error.message}{_number_hint(error)}"


def _number_hint(error: ValidationError) -> str:
    """For a number given as a string that reads as one (YAML 1.1 reads ``3e-4`` as a string):
    how to write it so that YAML reads a number."""
    wanted = error.validator_value if error.validator == "type" else None
    wanted = [wanted] if isinstance(wanted, str) else list(wanted or [])
    if not ({"number", "integer"} & set(wanted)) or not isinstance(error.instance, str):
        return ""
    text = error.instance.strip()
    try:
        float(text)
    except ValueError:
        return ""
    mantissa, _, exponent = text.lower().partition("e")
    if not exponent:
        return f" (a quoted number is a string: write {text} without quotes)"
    sign = "" if exponent[0] in "+-" else "+"
    fixed = f"{mantissa if '.' in mantissa else mantissa + '.0'}e{sign}{exponent}"
    return (f" (YAML reads {text} as a string: write the number as {fixed}, with a dot in the "
            "mantissa and a signed exponent, and without quotes)")


def validate_config(config: dict, schema_dir: str | Path) -> None:
    """Validate a config against the workflow's JSON schemas, without filling defaults.

    ``config`` is checked against ``config.schema.yaml``; its ``imaging`` and ``genomics``
    blocks (when present) against ``imaging.schema.yaml`` and ``genomics.schema.yaml``; and each
    enabled modality's ``train`` block against ``train.schema.yaml`` (JSON Schema draft 2020-12;
    ``$ref`` between the files resolve by file name). ``default:`` keys in the schemas are
    ignored: ``config`` is not modified.

    Parameters
    ----------
    config
        The loaded config.
    schema_dir
        The folder holding the four ``*.schema.yaml`` files.

    Raises
    ------
    VoxseqError
        For the most relevant error (``jsonschema.exceptions.best_match``) of the first block
        that fails, naming the full key path, e.g. ``config imaging.train.epochs: -1 is less
        than the minimum of 1``, and how many more problems that block has.
    """
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match
    from referencing import Registry, Resource

    schemas = _load_schemas(Path(schema_dir))
    registry = Registry().with_resources(
        (f"{name}.schema.yaml", Resource.from_contents(schema)) for name, schema in schemas.items()
    )
    blocks = [("", "config", config)]
    blocks += [(m, m, config[m]) for m in MODALITIES if m in config]
    blocks += [
        (f"{m}.train", "train", config[m].get("train", {}))
        for m in MODALITIES
        if isinstance(config.get(m), dict) and config[m].get("enabled")
    ]
    classify = (config.get("imaging") or {}).get("classify")
    if isinstance(classify, dict) and classify.get("enabled") is not False:
        blocks.append(("imaging.classify.train", "train", classify.get("train", {})))
    synthesis = (config.get("imaging") or {}).get("synthesis")
    if isinstance(synthesis, dict) and synthesis.get("enabled") is not False:
        blocks.append(("imaging.synthesis.train", "train", synthesis.get("train", {})))
    for prefix, name, instance in blocks:
        validator = Draft202012Validator(schemas[name], registry=registry)
        errors = list(validator.iter_errors(instance))
        if errors:
            more = len(errors) - 1
            tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
            raise VoxseqError(_error_message(prefix, best_match(errors)) + tail)
