"""Rule imaging_dicom: convert one subject's DICOM series (one sheet column) to NIfTI."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.imaging.dicom import convert_series  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    convert_series(
        snakemake.wildcards.subject,
        snakemake.input.folder,
        out_image=snakemake.output.image,
        out_record=snakemake.output.record,
        column=snakemake.wildcards.column,
        series=snakemake.params.series,
        min_slices=snakemake.params.min_slices,
    )
