"""Where the demo generator writes each subject's files (paths relative to its output folder).

One table for the generator (:mod:`voxseq.demo.imaging`, :mod:`voxseq.demo.genomics`) and for the
run plan, which must know the demo's sample sheet before the demo rule has run.
"""

from __future__ import annotations

from collections.abc import Sequence


def imaging_files(subject: str, extra_channels: Sequence[str] = ()) -> dict[str, str]:
    """``image``, ``label`` and ``image_<name>`` paths of a demo subject."""
    return {
        "image": f"imaging/{subject}_image.nii.gz",
        "label": f"imaging/{subject}_label.nii.gz",
        **{f"image_{n}": f"imaging/{subject}_{n}.nii.gz" for n in extra_channels},
    }


def genomics_files(subject: str) -> dict[str, str]:
    """``bam`` and ``vcf`` paths of a demo subject."""
    return {"bam": f"genomics/{subject}.bam", "vcf": f"genomics/{subject}.vcf.gz"}
