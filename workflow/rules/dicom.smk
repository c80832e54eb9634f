# DICOM series to NIfTI (dcm2niix), one volume per subject and image column, before ingest.
# Included by the Snakefile once the sheet may name a DICOM folder; common.smk provides
# get_dicom_folder(wildcards) (the folder in the sheet's cell for that subject and column) and
# get_dicom_series(wildcards) (the series pattern for that column, or None).


rule imaging_dicom:
    input:
        folder=get_dicom_folder,
    output:
        image=f"{RES}/imaging/dicom/{{subject}}/{{column}}.nii.gz",
        record=f"{RES}/imaging/dicom/{{subject}}/{{column}}.json",
    log:
        f"{LOGS}/imaging/dicom/{{subject}}/{{column}}.log",
    benchmark:
        f"{BENCH}/imaging/dicom/{{subject}}/{{column}}.tsv"
    wildcard_constraints:
        column=r"image(_[a-z0-9][a-z0-9_]{0,31})?",
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(30),
    params:
        series=get_dicom_series,
        min_slices=2,
    script:
        "../../scripts/imaging_dicom.py"
