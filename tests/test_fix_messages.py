"""Error messages suggest only a fix that works: applying it passes the check that failed."""

from __future__ import annotations

import ast
import re

import pytest

from voxseq import VoxseqError
from voxseq.imaging.channels import check_bundle_channels, cohort_channels


def _refusal(theirs, ours, columns) -> str:
    with pytest.raises(VoxseqError) as err:
        check_bundle_channels(theirs, ours, "models.imaging m/", columns)
    return str(err.value)


def test_a_two_channel_bundle_on_a_one_channel_cohort_asks_for_the_images_not_a_rename():
    msg = _refusal(["image", "t2"], ["image"], [])
    assert "imaging.channels: ['image', 't2'] " not in msg.split(" or one 4D")[0]
    assert "sheet columns image, image_t2" in msg and "4D 'image' file of 2 volumes" in msg
    assert "cannot be renamed" in msg


@pytest.mark.parametrize(
    "theirs, columns",
    [(["t1", "t2"], ["image_t2"]),  # only the first name differs: imaging.channels works
     (["t1", "flair"], []),  # 4D volumes named by imaging.channels
     (["image", "flair"], ["image_t2"])],  # sheet columns: rename them
)
def test_the_suggested_fix_makes_the_cohort_match_the_bundle(theirs, columns):
    ours = cohort_channels(columns, None if columns else ["t1", "t2"])
    msg = _refusal(theirs, ours, columns)
    configured = re.search(r"imaging.channels: (\[[^]]*\])", msg)
    renamed = re.search(r"rename the sheet's columns \[[^]]*\] to (\[[^]]*\])", msg)
    assert bool(configured) != bool(renamed), msg
    if configured:
        fixed = cohort_channels(columns, ast.literal_eval(configured.group(1)))
    else:
        fixed = cohort_channels(ast.literal_eval(renamed.group(1)), None)
    check_bundle_channels(theirs, fixed, "models.imaging m/", columns)
