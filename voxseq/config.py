"""Config checks that a JSON schema cannot express (run at DAG-building time)."""

from __future__ import annotations

from voxseq import VoxseqError


def check_config(config: dict) -> None:
    """Raise :class:`VoxseqError` naming the key and values for inconsistent settings."""
    img, gen = config.get("imaging", {}), config.get("genomics", {})
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
        overlap = set(gen.get("val_contigs", [])) & set(gen.get("test_contigs", []))
        if overlap:
            raise VoxseqError(
                f"config genomics: contigs {sorted(overlap)} are in both val_contigs and "
                "test_contigs"
            )
