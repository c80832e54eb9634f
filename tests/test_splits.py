"""Split assignment: a subject's split depends only on the seed and its own id."""

from __future__ import annotations

import math

import pytest

from voxseq import VoxseqError
from voxseq.io.sheet import SPLITS, assign_splits

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def _rows(ids: list[str], split: str = "") -> list[dict[str, str]]:
    return [{"subject": s, "split": split} for s in ids]


def _splits(rows: list[dict[str, str]]) -> dict[str, str]:
    return {r["subject"]: r["split"] for r in rows}


def _ids(n: int, prefix: str = "s") -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]


def test_adding_a_subject_moves_no_other_subject():
    before = _splits(assign_splits(_rows(_ids(100)), 3, FRACTIONS))
    after = _splits(assign_splits(_rows([*_ids(100), "newcomer"]), 3, FRACTIONS))
    moved = [s for s in before if after[s] != before[s]]
    assert moved == [], f"{len(moved)} subjects changed split"


def test_removing_a_subject_moves_no_other_subject():
    ids = _ids(100)
    before = _splits(assign_splits(_rows(ids), 3, FRACTIONS))
    after = _splits(assign_splits(_rows(ids[:40] + ids[41:]), 3, FRACTIONS))
    moved = [s for s in after if after[s] != before[s]]
    assert moved == [], f"{len(moved)} subjects changed split"


def test_counts_follow_the_fractions():
    n = 1000
    got = _splits(assign_splits(_rows(_ids(n)), 11, FRACTIONS))
    for split, frac in FRACTIONS.items():
        count = sum(v == split for v in got.values())
        tolerance = 4 * math.sqrt(n * frac * (1 - frac))  # 4 binomial standard deviations
        assert abs(count - n * frac) <= tolerance, (split, count)


def test_a_split_left_out_is_zero():
    got = _splits(assign_splits(_rows(_ids(1000)), 5, {"train": 0.75, "val": 0.25}))
    assert "test" not in got.values()
    assert abs(sum(v == "val" for v in got.values()) - 250) <= 4 * math.sqrt(1000 * 0.25 * 0.75)


def test_a_partial_block_on_fourteen_subjects_puts_nobody_in_test():
    got = _splits(assign_splits(_rows(_ids(14)), 0, {"train": 0.8, "val": 0.2}))
    counts = {s: sum(v == s for v in got.values()) for s in SPLITS}
    assert counts["test"] == 0 and counts["val"] >= 1 and counts["train"] + counts["val"] == 14


@pytest.mark.parametrize(
    "fractions, problem",
    [({"train": 0.8, "val": 0.2, "test": 0.25}, "they sum to 1.25"),
     ({"train": 3, "val": 1}, "they sum to 4"),
     ({"train": 0.8, "validation": 0.2}, "unknown split 'validation'")],
)
def test_fractions_not_summing_to_one_are_refused_naming_them(fractions, problem):
    with pytest.raises(VoxseqError) as err:
        assign_splits(_rows(_ids(5)), 0, fractions)
    assert str(fractions) in str(err.value) and problem in str(err.value)
    assert "a split left out is 0" in str(err.value)


def test_fractions_summing_to_one_up_to_rounding_are_accepted():
    assign_splits(_rows(_ids(5)), 0, {"train": 0.7, "val": 0.2, "test": 0.1})


def test_same_seed_same_result_other_seed_differs():
    rows = _rows(_ids(50))
    a = _splits(assign_splits(rows, 3, FRACTIONS))
    assert a == _splits(assign_splits(list(reversed(rows)), 3, FRACTIONS))
    assert a != _splits(assign_splits(rows, 4, FRACTIONS))


def test_explicit_splits_are_kept():
    rows = _rows(_ids(30)) + [{"subject": "fixed", "split": "test"}]
    rows += _rows(["pinned"], "val")
    got = _splits(assign_splits(rows, 3, {"train": 1.0, "val": 0.0, "test": 0.0}))
    assert got["fixed"] == "test" and got["pinned"] == "val"
    assert {got[s] for s in _ids(30)} == {"train"}


def test_tiny_cohort_gets_every_split_with_a_positive_fraction():
    for n in (3, 4, 6):
        got = _splits(
            assign_splits(_rows(_ids(n, "t")), 7, {"train": 0.9, "val": 0.05, "test": 0.05})
        )
        assert set(got.values()) == set(SPLITS), (n, got)


def test_demo_config_gets_val_and_test_subjects():
    """The default config: seed 42, 16 demo subjects, fractions 0.6 / 0.15 / 0.25."""
    ids = [f"demo{i:03d}" for i in range(1, 17)]
    got = _splits(assign_splits(_rows(ids), 42, {"train": 0.6, "val": 0.15, "test": 0.25}))
    counts = {s: sum(v == s for v in got.values()) for s in SPLITS}
    assert counts["val"] >= 1 and counts["test"] >= 1 and counts["train"] >= 8, counts


@pytest.mark.parametrize(
    "fractions",
    [{"train": 0, "val": 0, "test": 0}, {}, {"train": 1, "val": -0.1, "test": 0.1}],
)
def test_zero_or_negative_fractions_are_refused(fractions):
    with pytest.raises(VoxseqError, match="splits"):
        assign_splits(_rows(_ids(5)), 0, fractions)
