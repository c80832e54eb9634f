"""Per-subject chunked zarr store (OME-Zarr / NGFF 0.5 layout) of a normalised volume.

Layout::

    <subject>.zarr/            group; attrs: "ome" (multiscales) + "voxseq" (geometry, scheme)
      0/                       image, float32 (X, Y, Z), canonical RAS order, chunked
      labels/label/0/          label, uint8, same grid (when the subject has one)

``attrs["voxseq"]`` carries what inference needs to go back to the subject's original file:
its canonical shape and spacing, its stored orientation, shape and affine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from voxseq import VoxseqError
from voxseq.io.atomic import atomic_path
from voxseq.io.digest import object_sha256

CHUNKS = (32, 32, 32)
AXES = [{"name": n, "type": "space", "unit": "millimeter"} for n in ("x", "y", "z")]


def _multiscales(spacing, name: str) -> dict:
    return {
        "version": "0.5",
        "multiscales": [
            {
                "name": name,
                "axes": AXES,
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [
                            {"type": "scale", "scale": list(map(float, spacing))}
                        ],
                    }
                ],
            }
        ],
    }


def write_store(
    path: str | Path, image: np.ndarray, label: np.ndarray | None, spacing, meta: dict
) -> None:
    """Write a subject store atomically (temporary folder renamed onto ``path``)."""
    with atomic_path(path, is_dir=True) as tmp:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        root.attrs.update(
            {
                "ome": _multiscales(spacing, meta.get("subject", "")),
                "voxseq": {**meta, "spacing": list(map(float, spacing))},
            }
        )
        chunks = tuple(min(c, s) for c, s in zip(CHUNKS, image.shape, strict=True))
        arr = root.create_array("0", shape=image.shape, dtype="float32", chunks=chunks)
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
            la = lab.create_array("0", shape=label.shape, dtype="uint8", chunks=chunks)
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
        return tuple(self.image.shape)  # type: ignore[return-value]


def open_store(path: str | Path) -> Store:
    """Open a store read-only."""
    try:
        root = zarr.open_group(str(path), mode="r")
        image = root["0"]
    except Exception as exc:
        raise VoxseqError(f"zarr store {path}: cannot be opened ({exc})") from exc
    label = root["labels/label/0"] if "labels" in root else None
    return Store(str(path), image, label, dict(root.attrs["voxseq"]))


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
