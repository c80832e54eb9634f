"""Model cards: a bundle's ``README.md``, written from its ``bundle.json``.

A card tells a person who finds a bundle folder what the model is, what it was trained on, what
it expects as input, how well it did, what it is for and what it is not for, after the model-card
outline of Mitchell et al. (2019). Everything on the card comes from ``bundle.json``; nothing is
recomputed, so the card of a bundle is a pure function of its metadata. The card is not part of
the bundle's digest (:func:`voxseq.bundle.bundle_digest` covers ``bundle.json`` and the weights).

Usage::

    from voxseq.model_card import write_model_card
    write_model_card("models/demo/imaging")          # writes models/demo/imaging/README.md
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from voxseq import VoxseqError
from voxseq.io.atomic import write_text

log = logging.getLogger(__name__)

CARD = "README.md"

#: architecture name -> (task title, intended use, task-specific limitations)
TASKS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "unet3d": (
        "3D segmentation",
        "Segmenting the structures named under *labels* in volumes of the same kind (modality, "
        "channels, field of view) as the training cohort, for volumetric measurements in research "
        "studies.",
        (
            "Dice and volumes were measured on the training cohort's own validation/test "
            "subjects; another scanner, protocol or population can lower them without warning.",
            "Small structures score lower Dice: most of their voxels lie on the boundary.",
        ),
    ),
    "classifier_ensemble": (
        "subject classification (fold ensemble)",
        "Ranking subjects of a research cohort by the probability of each class named under "
        "*classes*, from the same kind of volumes as the training cohort.",
        (
            "Trained on few subjects: the AUROC interval is wide, and the 0.5 cut is poorly "
            "calibrated; prefer the probabilities' ranking to the predicted class.",
            "The class is whatever the training sheet's `class` column meant; the model knows "
            "nothing else about it.",
        ),
    ),
    "dilated_cnn": (
        "sequence-to-coverage model (dilated residual CNN)",
        "Predicting binned, library-normalised coverage from DNA sequence on the reference it was "
        "trained on, and scoring single-nucleotide variants by predicted alt - ref coverage.",
        (
            "Variant scores are predictions of coverage change, not of pathogenicity.",
            "Indels and multi-base variants are not scored.",
        ),
    ),
    "conv_autoencoder3d": (
        "imaging quality control (3D denoising autoencoder)",
        "Flagging volumes of a cohort that look unlike the training subjects (artefacts, wrong "
        "contrast, failed preprocessing) for a person to review.",
        (
            "A flag means 'unlike the training subjects', not 'wrong': a rare but genuine "
            "anatomy is flagged too, and a defect the training subjects share is not.",
        ),
    ),
    "profile_autoencoder": (
        "genomics quality control (dense autoencoder on coverage profiles)",
        "Flagging sequencing libraries whose coarse coverage profile is unlike the training "
        "subjects' (failed libraries, strong GC or positional bias) and suggesting candidate "
        "copy-number regions for a person to review.",
        (
            "Candidate regions are runs of deviant coarse bins, not copy-number calls; confirm "
            "them with a dedicated caller.",
        ),
    ),
}
TASKS["cnn_bilstm"] = (
    "sequence-to-coverage model (CNN + bidirectional LSTM)",
    TASKS["dilated_cnn"][1],
    TASKS["dilated_cnn"][2],
)
TASKS["seqcnn"] = TASKS["dilated_cnn"]

GENERAL_LIMITATIONS = (
    "Apply it only to data prepared as under *Preprocessing*; voxseq refuses a cohort whose "
    "labels, classes, channels or preprocessing differ from the bundle's, but cannot check "
    "acquisition or population differences.",
    "The metrics above come from the training run's own validation/test split and may be "
    "optimistic for other cohorts: measure on labelled subjects of yours before relying on it.",
)

RESEARCH_ONLY = (
    "**Research use only.** This model is not a medical device and has not been validated for "
    "clinical use; do not use it for diagnosis, treatment or any decision about a person."
)

MAX_LIST = 8  # longer lists are summarised by their length


def _short(value: Any) -> str:
    """A value as short Markdown text: long lists summarised, floats to 4 significant digits."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        if len(value) > MAX_LIST:
            return f"{len(value)} values"
        return "[" + ", ".join(_short(v) for v in value) + "]"
    if isinstance(value, dict):
        if len(value) > MAX_LIST:
            return f"{len(value)} entries"
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    if value is None:
        return "n/a"
    return str(value).replace("|", "\\|")


def _rows(d: dict, prefix: str = "", depth: int = 2) -> Iterator[tuple[str, str]]:
    """``(dotted key, short value)`` of a nested dict, nested dicts flattened ``depth`` deep."""
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and depth > 1 and len(value) <= MAX_LIST * 2:
            yield from _rows(value, f"{name}.", depth - 1)
        else:
            yield name, _short(value)


def _table(d: dict, depth: int = 2) -> list[str]:
    rows = list(_rows(d, depth=depth))
    if not rows:
        return ["(none recorded)"]
    return ["| | |", "|---|---|", *[f"| `{k}` | {v} |" for k, v in rows]]


def _count(value: Any) -> str:
    return str(len(value)) if isinstance(value, list) else "n/a"


def _data_lines(meta: dict) -> list[str]:
    """Where the model's training data came from: cohort, subjects, digests."""
    prov, metrics = meta.get("provenance", {}), meta.get("metrics", {})
    train = metrics.get("train_subjects", prov.get("train_subjects"))
    val = metrics.get("val_subjects", prov.get("val_subjects"))
    lines = [f"- Cohort: `{prov.get('cohort', 'not recorded')}`"]
    if train is not None or val is not None:
        lines.append(f"- Subjects: {_count(train)} training, {_count(val)} validation")
    for key, text in (("sample_sheet_digest", "Sample sheet SHA-256"),
                      ("config_digest", "Config digest"),
                      ("training_digest", "Training-input digest")):
        if prov.get(key):
            lines.append(f"- {text}: `{prov[key]}`")
    pre = meta.get("preprocessing", {})
    for key in ("labels", "classes", "channels", "tracks"):
        if pre.get(key):
            lines.append(f"- {key.capitalize()}: {_short(pre[key])}")
    return lines


def _selection_lines(meta: dict) -> list[str]:
    sel = meta.get("selection")
    if not sel:
        return []
    return ["", "## Selection", "",
            f"Chosen by {sel.get('criterion', 'n/a')} among: {_short(sel.get('compared', {}))}."]


def render_model_card(meta: dict) -> str:
    """The Markdown model card of one bundle.

    Parameters
    ----------
    meta
        A bundle's ``bundle.json`` content (:func:`voxseq.bundle.write_bundle`): needs
        ``modality`` and ``architecture.name``; every other section is filled from what the
        metadata records and says "not recorded" otherwise.

    Returns
    -------
    str
        The card's Markdown text.
    """
    try:
        modality, arch = meta["modality"], meta["architecture"]["name"]
    except (KeyError, TypeError) as exc:
        raise VoxseqError(f"bundle.json: no modality / architecture.name ({exc})") from None
    title, use, limits = TASKS.get(
        arch, (f"{modality} model ({arch})", "Research use on data like the training cohort's.", ())
    )
    prov = meta.get("provenance", {})
    files = meta.get("files", {})
    exports = meta.get("exports", {})
    out = [
        f"# {modality} {title}: `{arch}`",
        "",
        RESEARCH_ONLY,
        "",
        "A voxseq model bundle: everything needed to apply this model to a new cohort "
        "(`models:` in a voxseq config). This card is generated from `bundle.json`.",
        "",
        "## Model",
        "",
        f"- Architecture: `{arch}` {_short(meta['architecture'].get('arguments', {}))}",
        f"- Trained with voxseq {prov.get('voxseq_version', 'n/a')}, torch "
        f"{prov.get('torch_version', 'n/a')}, on `{prov.get('device', 'n/a')}`"
        f" (seed {prov.get('seed', 'n/a')})",
        *[f"- `{name}` SHA-256 `{digest}`" for name, digest in files.items()],
        *[f"- Export ({kind}): `{e.get('file')}`, not needed by voxseq"
          for kind, e in exports.items()],
        "",
        "## Intended use",
        "",
        use,
        "",
        "## Training data",
        "",
        *_data_lines(meta),
        "",
        "## Preprocessing",
        "",
        "Applied by voxseq from this record, never recomputed from a new cohort:",
        "",
        *_table(meta.get("preprocessing", {}), depth=1),
        "",
        "## Metrics",
        "",
        "On the training cohort's own validation/test split:",
        "",
        *_table({k: v for k, v in meta.get("metrics", {}).items()
                 if k not in ("train_subjects", "val_subjects")}),
        *_selection_lines(meta),
        "",
        "## Limitations",
        "",
        *[f"- {text}" for text in (*limits, *GENERAL_LIMITATIONS)],
        "",
    ]
    return "\n".join(out)


def write_model_card(bundle_dir: str | Path, meta: dict | None = None) -> Path:
    """Write ``README.md`` into a bundle folder from its ``bundle.json``.

    Parameters
    ----------
    bundle_dir
        The bundle folder (holding ``bundle.json``); may be a bundle still being written, when
        ``meta`` is given.
    meta
        The ``bundle.json`` content, when the caller holds it; read from the folder otherwise.

    Returns
    -------
    Path
        The card's path.
    """
    bundle_dir = Path(bundle_dir)
    if meta is None:
        path = bundle_dir / "bundle.json"
        if not path.is_file():
            raise VoxseqError(f"model card: {path} not found (not a bundle folder?)")
        try:
            meta = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise VoxseqError(f"model card: {path} is not valid JSON ({exc})") from None
    card = bundle_dir / CARD
    write_text(card, render_model_card(meta))
    log.info("wrote %s", card)
    return card
