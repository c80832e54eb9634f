"""Atomic writes on a shared cluster: umask permissions, leftovers of killed writers, full disk."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from voxseq import VoxseqError
from voxseq.io.atomic import atomic_path, write_json


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring it afterwards."""
    old = os.umask(0o022)
    os.umask(old)

    def _set(mask: int) -> None:
        os.umask(mask)

    yield _set
    os.umask(old)


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755),
                                                        (0o002, 0o664, 0o775),
                                                        (0o077, 0o600, 0o700)])
def test_outputs_get_the_modes_the_umask_gives(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    write_json(tmp_path / "a.json", {"x": 1})
    with atomic_path(tmp_path / "b.zarr", is_dir=True) as tmp:
        (tmp / "inner").write_text("x")
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "b.zarr").stat().st_mode) == dir_mode


def test_leftovers_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    (tmp_path / ".tmp-s.zarr.abc123").mkdir()
    (tmp_path / ".tmp-s.zarr.abc123" / "chunk").write_bytes(b"x")
    (tmp_path / ".tmp-s.zarr.zz.zarr").write_bytes(b"x")
    (tmp_path / ".tmp-other.json.q").write_bytes(b"x")  # another output's: kept
    with atomic_path(tmp_path / "s.zarr", is_dir=True) as tmp:
        (tmp / "inner").write_text("x")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".tmp-other.json.q", "s.zarr"]


def test_full_disk_names_the_output_and_the_free_space(tmp_path):
    target = tmp_path / "sub" / "s_seg.nii.gz"
    with pytest.raises(VoxseqError) as exc, atomic_path(target):
        raise OSError(errno.ENOSPC, "No space left on device")
    msg = str(exc.value)
    assert str(target) in msg and "no space left" in msg and "MiB free" in msg
    assert list((tmp_path / "sub").iterdir()) == []


def test_other_os_errors_pass_through(tmp_path):
    with pytest.raises(PermissionError), atomic_path(tmp_path / "x.json"):
        raise PermissionError(errno.EACCES, "denied")
