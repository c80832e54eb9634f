"""The demo generator's off-by-default options for synthesis: a missing further channel and
lesion-free subjects; nothing else about any subject changes."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from voxseq.demo.imaging import ImagingDemoConfig, generate_imaging


def _arrays(root, made, sid):
    return {
        k: np.asarray(nib.load(root / p).dataobj)
        for k, p in made[sid].items()
        if k.startswith(("image", "label")) and p
    }


def test_missing_channel_and_lesion_free_subject_leave_the_rest_alone(tmp_path):
    subjects = ["a", "b", "c"]
    cfg = ImagingDemoConfig.small()
    plain = generate_imaging(tmp_path / "plain", subjects, 7, cfg, channels=2)
    made = generate_imaging(
        tmp_path / "opt", subjects, 7, cfg, channels=2, missing={"b": ["t2"]}, lesion_free={"c"}
    )
    assert made["a"] == plain["a"]
    assert made["b"]["image_t2"] == "" and plain["b"]["image_t2"]
    assert not list((tmp_path / "opt" / "imaging").glob("b_t2*"))
    for sid in ("a", "b"):
        ours, theirs = _arrays(tmp_path / "opt", made, sid), _arrays(tmp_path / "plain", plain, sid)
        assert set(ours) <= set(theirs)
        assert all(np.array_equal(ours[k], theirs[k]) for k in ours)
    lab_free = _arrays(tmp_path / "opt", made, "c")["label"]
    lab = _arrays(tmp_path / "plain", plain, "c")["label"]
    assert (lab == 2).any() and not (lab_free == 2).any()
    assert np.array_equal(lab_free > 0, lab > 0)  # the organ is whole where lesions were
    assert made["c"]["class"] == "low_burden"
    with pytest.raises(ValueError, match="flair"):
        generate_imaging(tmp_path / "bad", subjects, 7, cfg, channels=2, missing={"a": ["flair"]})
