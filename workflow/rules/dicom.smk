# DICOM series to NIfTI (dcm2niix), one volume per subject and image column whose sheet cell
# names a folder, before ingest (which then reads the NIfTI). IN.dicom_folder and
# IN.dicom_series (common.smk) look the folder and the series pattern up in the plan.


rule imaging_dicom:
    input:
        folder=IN.dicom_folder,
    output:
        image=L("dicom_image"),
        record=L("dicom_record"),
    log:
        L.log("imaging/dicom/{subject}/{column}"),
    benchmark:
        L.bench("imaging/dicom/{subject}/{column}")
    wildcard_constraints:
        column=r"image(_[a-z0-9][a-z0-9_]{0,31})?",
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(30),
    params:
        series=IN.dicom_series,
        min_slices=config["imaging"]["dicom"]["min_slices"],
    script:
        "../../scripts/imaging_dicom.py"
