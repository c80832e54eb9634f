# voxseq: imaging + genomics cohorts -> trained models -> cohort-wide predictions.
# Wiring only: config, validation (in common.smk), the stage rules and the final targets.
from snakemake.utils import min_version

min_version("9.0")


configfile: f"{workflow.basedir}/config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/dicom.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/normalise.smk"
include: "workflow/rules/tile.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/qc.smk"
include: "workflow/rules/infer.smk"
include: "workflow/rules/subject.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        IN.final_outputs(),
        get_report_figures(),
