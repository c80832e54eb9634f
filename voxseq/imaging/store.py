"""Per-subject chunked zarr store (OME-Zarr / NGFF 0.5 layout) of a normalised volume.

Layout::

    <subject>.zarr/            group; attrs: "ome" (multiscales) + "voxseq" (geometry, scheme)
      0/                       image, float32 (X, Y, Z) for one channel, (C, X, Y, Z) for
                               several (axes c, x, y, z; names in attrs "voxseq" "channels"
                               and "omero"), canonical RAS order, chunked
      labels/label/0/          label, uint8, same grid (when the subject has one)

``attrs["voxseq"]`` carries what inference needs to go back to the subject's original file:
its canonical shape and spacing, its stored orientation, shape and affine.

Arrays are stored uncompressed (zarr's ``bytes`` codec only) in chunks of whole ``(Y, Z)`` planes,
the whole volume in one chunk up to :data:`CHUNK_BYTES`: training reads thousands of small
patches at random places, and :func:`read_region` reads them straight from the memory-mapped
chunk files, without decoding whole chunks (zstd-compressed 32^3 chunks cost ~11 ms a patch).
Values are the same bytes either way; any other layout (older stores) is read through zarr.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from voxseq import VoxseqError
from voxseq.imaging.channels import DEFAULT_CHANNEL
from voxseq.io.atomic import atomic_path
from voxseq.io.digest import object_sha256

CHUNK_BYTES = 64 * 2**20  # largest chunk; bigger volumes are split along X
AXES = [{"name": n, "type": "space", "unit": "millimeter"} for n in ("x", "y", "z")]
CHANNEL_AXIS = {"name": "c", "type": "channel"}


def _multiscales(spacing, name: str, channels: Sequence[str] | None = None) -> dict:
    """OME-Zarr 0.5 attributes; with ``channels``, a leading channel axis (and ``omero``
    channel labels)."""
    axes, scale = AXES, list(map(float, spacing))
    if channels:
        axes, scale = [CHANNEL_AXIS, *AXES], [1.0, *scale]
    out = {
        "version": "0.5",
        "multiscales": [
            {
                "name": name,
                "axes": axes,
                "datasets": [
                    {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}
                ],
            }
        ],
    }
    if channels:
        out["omero"] = {"channels": [{"label": str(c), "active": True} for c in channels]}
    return out


def store_chunks(shape: Sequence[int], itemsize: int) -> tuple[int, int, int]:
    """Chunk shape of a stored array: whole (Y, Z) planes, as many along X as fit
    :data:`CHUNK_BYTES` (the whole volume for every usual size)."""
    plane = int(shape[1]) * int(shape[2]) * itemsize
    return (max(1, min(int(shape[0]), CHUNK_BYTES // max(plane, 1))), int(shape[1]), int(shape[2]))


def write_store(
    path: str | Path, image: np.ndarray, label: np.ndarray | None, spacing, meta: dict
) -> None:
    """Write a subject store atomically (temporary folder renamed onto ``path``).

    ``image`` is (X, Y, Z), or (C, X, Y, Z) for several channels (``meta["channels"]``, when
    given, names them; each channel is chunked as one volume is).
    """
    multi = image.ndim == 4
    names = list(meta.get("channels") or [])
    if multi and names and len(names) != image.shape[0]:
        raise VoxseqError(f"zarr store {path}: {image.shape[0]} channels, {len(names)} names")
    with atomic_path(path, is_dir=True) as tmp:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        root.attrs.update(
            {
                "ome": _multiscales(
                    spacing,
                    meta.get("subject", ""),
                    (names or range(len(image))) if multi else None,
                ),
                "voxseq": {**meta, "spacing": list(map(float, spacing))},
            }
        )
        spatial = store_chunks(image.shape[-3:], 4)
        chunks = (1, *spatial) if multi else spatial
        arr = root.create_array(
            "0", shape=image.shape, dtype="float32", chunks=chunks, compressors=None
        )
        arr[...] = image.astype(np.float32)
        if label is not None:
            lg = root.create_group("labels")
            lg.attrs.update({"ome": {"version": "0.5", "labels": ["label"]}})
            lab = lg.create_group("label")
            lab.attrs.update(
                {
                    "ome": {
                        **_multiscales(spacing, "label"),
                        "image-label": {"source": {"image": "../../"}},
                    }
                }
            )
            la = lab.create_array(
                "0", shape=label.shape, dtype="uint8", chunks=spatial, compressors=None
            )
            la[...] = label.astype(np.uint8)


@dataclass
class Store:
    """An open subject store: lazily read ``image``/``label`` arrays plus metadata."""

    path: str
    image: zarr.Array
    label: zarr.Array | None
    meta: dict

    @property
    def shape(self) -> tuple[int, int, int]:
        """The spatial (X, Y, Z) shape."""
        return tuple(self.image.shape[-3:])  # type: ignore[return-value]

    @property
    def n_channels(self) -> int:
        return 1 if self.image.ndim == 3 else int(self.image.shape[0])

    @property
    def channels(self) -> list[str]:
        """Channel names (stores written before channels were recorded: ``["image"]``)."""
        return list(self.meta.get("channels") or [DEFAULT_CHANNEL])

    def read_image(self) -> np.ndarray:
        """The whole image as float32 (C, X, Y, Z), one channel or several."""
        data = np.asarray(self.image[...], dtype=np.float32)
        return data[None] if data.ndim == 3 else data


def open_store(path: str | Path) -> Store:
    """Open a store read-only."""
    try:
        root = zarr.open_group(str(path), mode="r")
        image = root["0"]
    except Exception as exc:
        raise VoxseqError(f"zarr store {path}: cannot be opened ({exc})") from exc
    label = root["labels/label/0"] if "labels" in root else None
    return Store(str(path), image, label, dict(root.attrs["voxseq"]))


def common_channels(stores: dict[str, str]) -> list[str]:
    """The channel names every store has (subject -> store path); refuses a mix.

    Raises
    ------
    VoxseqError
        Naming a subject and store whose channels differ from the first subject's.
    """
    first, names = None, None
    for subject in sorted(stores):
        st = open_store(stores[subject])
        theirs = st.channels
        if len(theirs) != st.n_channels:
            raise VoxseqError(
                f"subject {subject}: store {stores[subject]} holds {st.n_channels} channels but "
                f"names {theirs}"
            )
        if names is None:
            first, names = subject, theirs
        elif theirs != names:
            raise VoxseqError(
                f"subject {subject}: store {stores[subject]} has channels {theirs}, subject "
                f"{first} has {names}: every subject needs the same channels in the same order"
            )
    return names or [DEFAULT_CHANNEL]


def content_digest(path: str | Path) -> str:
    """Digest of what a store was made from: the source files' SHA-256 recorded at ingest
    (``meta["sha256"]``), else (stores written before it was recorded) its arrays' bytes."""
    import hashlib

    st = open_store(path)
    if st.meta.get("sha256"):
        return object_sha256(st.meta["sha256"])
    h = hashlib.sha256(np.ascontiguousarray(st.image[...]).tobytes())
    if st.label is not None:
        h.update(np.ascontiguousarray(st.label[...]).tobytes())
    return h.hexdigest()


def _raw_layout(array) -> tuple[str, tuple[int, ...], np.dtype] | None:
    """(array folder, chunk shape, dtype) when ``array`` is a zarr v3 array in a local folder
    whose chunks are raw little-endian bytes (no compression, filters or shards); else None."""
    try:
        from zarr.codecs import BytesCodec
        from zarr.storage import LocalStore

        meta = array.metadata
        codecs = meta.codecs
        store = array.store_path.store
        ok = (
            meta.zarr_format == 3
            and len(codecs) == 1
            and isinstance(codecs[0], BytesCodec)
            and (codecs[0].endian is None or codecs[0].endian.value == "little")
            and isinstance(store, LocalStore)
            and getattr(meta.chunk_key_encoding, "separator", None) == "/"
            and array.ndim in (3, 4)
            and meta.chunk_key_encoding.encode_chunk_key((0,) * array.ndim)
            == "/".join(["c"] + ["0"] * array.ndim)
        )
        if not ok:
            return None
        dtype = np.dtype(array.dtype).newbyteorder("<")
        return (
            os.path.join(str(store.root), array.store_path.path),
            tuple(meta.chunk_grid.chunk_shape),
            dtype,
        )
    except (AttributeError, ImportError, TypeError):
        return None


@functools.lru_cache(maxsize=64)
def _chunk_map(path: str, inode: int, mtime_ns: int, dtype: str, shape: tuple) -> np.memmap:
    """A chunk file memory-mapped read-only (cached per file version)."""
    return np.memmap(path, dtype=np.dtype(dtype), mode="r", shape=shape)


def read_region(array, start: Sequence[int], stop: Sequence[int]) -> np.ndarray:
    """``array[..., start:stop]`` (clipped to the array) as a new array, the same values as
    zarr's; ``start`` and ``stop`` cover the trailing (spatial) axes, leading ones (channels)
    are read whole.

    Raw-chunked local stores (what :func:`write_store` writes) are read from memory-mapped chunk
    files, touching only the pages of the region; anything else goes through zarr.
    """
    lead = array.ndim - len(start)
    start = [0] * lead + [int(b) for b in start]
    stop = [int(n) for n in array.shape[:lead]] + [int(e) for e in stop]
    stop = [min(int(e), int(n)) for e, n in zip(stop, array.shape, strict=True)]
    start = [min(max(int(b), 0), e) for b, e in zip(start, stop, strict=True)]
    layout = _raw_layout(array)
    if layout is None:
        return np.asarray(array[tuple(slice(b, e) for b, e in zip(start, stop, strict=True))])
    folder, chunks, dtype = layout
    out = np.empty([e - b for b, e in zip(start, stop, strict=True)], dtype=array.dtype)
    fill = array.metadata.fill_value
    nbytes = int(np.prod(chunks)) * dtype.itemsize
    ranges = [range(b // c, (e - 1) // c + 1) for b, e, c in zip(start, stop, chunks, strict=True)]
    for idx in itertools.product(*ranges):
        lo = [max(b, i * c) for b, i, c in zip(start, idx, chunks, strict=True)]
        hi = [min(e, (i + 1) * c) for e, i, c in zip(stop, idx, chunks, strict=True)]
        dst = tuple(slice(a - b, z - b) for a, z, b in zip(lo, hi, start, strict=True))
        src = tuple(
            slice(a - i * c, z - i * c) for a, z, i, c in zip(lo, hi, idx, chunks, strict=True)
        )
        path = os.path.join(folder, "c", *map(str, idx))
        try:
            st = os.stat(path)
        except FileNotFoundError:  # never written: all fill value
            out[dst] = fill
            continue
        if st.st_size != nbytes:
            raise VoxseqError(f"zarr chunk {path}: {st.st_size} bytes, expected {nbytes}")
        out[dst] = _chunk_map(path, st.st_ino, st.st_mtime_ns, dtype.str, chunks)[src]
    return out
