"""Model cards: a bundle's README.md from its bundle.json."""

from __future__ import annotations

import json

import pytest

from voxseq import VoxseqError
from voxseq.model_card import RESEARCH_ONLY, render_model_card, write_model_card

#: A segmentation bundle.json as voxseq.imaging.train writes it (values shortened).
SEGMENTATION = {
    "format_version": 1,
    "modality": "imaging",
    "architecture": {"name": "unet3d",
                     "arguments": {"in_channels": 1, "out_channels": 3, "depth": 3,
                                   "base_channels": 16}},
    "preprocessing": {
        "target_spacing": [1.5, 1.5, 2.5], "interpolation": "linear", "normalisation": "zscore",
        "statistics": None, "patch_size": [48, 48, 32], "labels": ["background", "organ", "lesion"],
        "in_channels": 1, "channels": ["image"], "channel_grid": "check",
        "infer": {"overlap": 0.5, "batch_size": 4, "sigma_scale": 0.125, "mirror": False},
    },
    "metrics": {"best_epoch": 7, "validation": {"val_loss": 0.21, "score": 0.9312345,
                                                "val_dice_1": 0.97, "val_dice_2": 0.89},
                "train_subjects": [f"demo{i:03d}" for i in range(1, 15)],
                "val_subjects": ["demo015", "demo016", "demo017", "demo018"]},
    "provenance": {"cohort": "demo", "config_digest": "c0ffee", "sample_sheet_digest": "5eed",
                   "seed": 42, "device": "cpu", "amp": False, "processes": 1,
                   "voxseq_version": "0.1.0", "torch_version": "2.13.0"},
    "files": {"weights.safetensors": "ab12"},
    "exports": {"torchscript": {"file": "model.torchscript.pt",
                                "example_shape": [1, 1, 48, 48, 32]}},
}

#: A genomics bundle chosen among architectures (voxseq.genomics.compare adds `selection`).
SEQUENCE = {
    "format_version": 1,
    "modality": "genomics",
    "architecture": {"name": "cnn_bilstm", "arguments": {"channels": 32, "lstm_hidden": 32}},
    "preprocessing": {"window": 4096, "bin_size": 32, "tracks": [f"demo{i:03d}" for i in range(24)],
                      "normalisation": "cpm", "library_sizes": list(range(24))},
    "metrics": {"best_epoch": 5, "val_pearson_mean": 0.918, "test_pearson_mean": 0.924},
    "provenance": {"cohort": "demo", "voxseq_version": "0.1.0", "torch_version": "2.13.0"},
    "files": {"weights.safetensors": "cd34"},
    "exports": {},
    "selection": {"criterion": "mean val Pearson R",
                  "compared": {"dilated_cnn": 0.9177, "cnn_bilstm": 0.918}},
}


def test_card_sections_come_from_the_bundle_json(tmp_path):
    (tmp_path / "bundle.json").write_text(json.dumps(SEGMENTATION))
    card = write_model_card(tmp_path).read_text()
    assert card.startswith("# imaging 3D segmentation: `unet3d`")
    for heading in ("## Model", "## Intended use", "## Training data", "## Preprocessing",
                    "## Metrics", "## Limitations"):
        assert f"\n{heading}\n" in card
    assert RESEARCH_ONLY in card
    assert "- Cohort: `demo`" in card
    assert "- Subjects: 14 training, 4 validation" in card
    assert "- Labels: [background, organ, lesion]" in card
    assert "| `target_spacing` | [1.5, 1.5, 2.5] |" in card
    assert "| `validation.score` | 0.9312 |" in card
    assert "voxseq 0.1.0, torch 2.13.0, on `cpu` (seed 42)" in card
    assert "`weights.safetensors` SHA-256 `ab12`" in card
    assert "train_subjects" not in card  # counted under Training data, not listed


def test_card_summarises_long_lists_and_records_the_selection():
    card = render_model_card(SEQUENCE)
    assert card.startswith("# genomics sequence-to-coverage model (CNN + bidirectional LSTM)")
    assert "| `tracks` | 24 values |" in card
    assert "| `library_sizes` | 24 values |" in card
    assert "## Selection" in card and "mean val Pearson R" in card
    assert "not of pathogenicity" in card
    assert "- Subjects:" not in card  # not recorded: no made-up counts


def test_unknown_architecture_still_gets_a_card():
    meta = {**SEQUENCE, "architecture": {"name": "pix2pix3d", "arguments": {}}}
    meta.pop("selection")
    card = render_model_card(meta)
    assert card.startswith("# genomics genomics model (pix2pix3d)")
    assert RESEARCH_ONLY in card


def test_errors_name_the_file(tmp_path):
    with pytest.raises(VoxseqError, match="bundle.json not found"):
        write_model_card(tmp_path)
    (tmp_path / "bundle.json").write_text("{not json")
    with pytest.raises(VoxseqError, match="not valid JSON"):
        write_model_card(tmp_path)
    with pytest.raises(VoxseqError, match="architecture.name"):
        render_model_card({"modality": "imaging"})


def test_card_of_a_written_bundle(tmp_path):
    torch = pytest.importorskip("torch")
    from voxseq.bundle import bundle_digest, write_bundle
    from voxseq.models import build_model

    model = build_model("unet3d", in_channels=1, out_channels=2, depth=2, base_channels=2)
    meta = write_bundle(tmp_path / "b", model, "imaging", "unet3d",
                        {"in_channels": 1, "out_channels": 2, "depth": 2, "base_channels": 2},
                        {"labels": ["background", "organ"]}, {"best_epoch": 0},
                        {"cohort": "tiny"})
    before = bundle_digest(tmp_path / "b")
    write_model_card(tmp_path / "b", meta)
    card = (tmp_path / "b" / "README.md").read_text()
    assert f"torch {torch.__version__}" in card and "- Cohort: `tiny`" in card
    assert bundle_digest(tmp_path / "b") == before  # the card is not part of the digest
