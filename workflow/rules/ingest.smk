# Stage 1, ingest: the demo cohort (when enabled), the resolved sample sheet, per-subject checks
# (imaging: NIfTI; genomics: the reference, then each BAM/CRAM and VCF against it).


if PLAN.demo:

    rule demo_cohort:
        output:
            sheet=L("demo_sheet"),
            files=IN.demo_outputs(),
        log:
            L.log("demo_cohort"),
        benchmark:
            L.bench("demo_cohort")
        conda:
            "../../envs/demo.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(30),
        params:
            subjects=list(PLAN.demo_subjects),
            seed=config["seed"],
            demo=config["demo"],
        script:
            "../../scripts/demo_cohort.py"


# what this run will do, readable by a person (voxseq.plan.RunPlan.to_dict)
rule run_plan:
    output:
        plan=L("plan"),
    log:
        L.log("run_plan"),
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(1000),
        runtime=per_attempt(5),
    params:
        plan=PLAN.to_dict(),
    script:
        "../../scripts/run_plan.py"


rule cohort_sheet:
    input:
        sheet=IN.sample_sheet,
    output:
        sheet=L("sheet"),
        record=L("sheet_record"),
    log:
        L.log("cohort_sheet"),
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(1000),
        runtime=per_attempt(10),
    params:
        seed=config["seed"],
        fractions=PLAN.split_fractions,
        converted=IN.converted_dicom(),
    script:
        "../../scripts/cohort_sheet.py"


rule imaging_ingest:
    input:
        unpack(IN.imaging_sources),
    output:
        meta=L("imaging_ingest"),
        sample=L("imaging_fg"),
    log:
        L.log("imaging/ingest/{subject}"),
    benchmark:
        L.bench("imaging/ingest/{subject}")
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=ingest_mem_mb,
        runtime=per_attempt(10),
    params:
        n_labels=len(config["imaging"]["labels"]),
        seed=config["seed"],
        max_voxels=config["imaging"]["max_voxels"],
        channel_columns=list(PLAN.channel_columns),
        channels=list(PLAN.channels),
        channel_grid=config["imaging"]["channel_grid"],
    script:
        "../../scripts/imaging_ingest.py"


# identical files under different subjects (from the ingest records' digests): the training
# rules read this, so a run with undeclared shared files stops before any model trains
rule shared_content:
    input:
        records=IN.ingest_records,
    output:
        shared=L("shared_content"),
    log:
        L.log("{modality}/shared_content"),
    wildcard_constraints:
        modality="imaging|genomics",
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(1000),
        runtime=per_attempt(10),
    params:
        allow=config["shared_files"]["allow"],
        allow_all=config["shared_files"]["allow_all"],
        split=dict(PLAN.split),
    script:
        "../../scripts/shared_content.py"


if PLAN.genomics:

    rule genomics_reference:
        input:
            fasta=IN.reference,
        output:
            contigs=L("reference_contigs"),
            record=L("reference_record"),
        log:
            L.log("genomics/reference"),
        conda:
            "../../envs/genomics.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(2000),
            runtime=per_attempt(30),
        script:
            "../../scripts/genomics_reference.py"

    rule genomics_ingest:
        input:
            bam=IN.bam,
            vcf=IN.vcf,
            fasta=IN.reference,
            contigs=L("reference_contigs"),
        output:
            report=L("genomics_ingest"),
        log:
            L.log("genomics/ingest/{subject}"),
        benchmark:
            L.bench("genomics/ingest/{subject}")
        conda:
            "../../envs/genomics.yaml"
        # a BAM: header, index and contigs only (its records are read by genomics_coverage);
        # a CRAM's records are counted here (slower; see voxseq.genomics.ingest)
        threads: 1
        resources:
            mem_mb=per_attempt(1000),
            runtime=per_attempt(60),
        params:
            min_mapq=config["genomics"]["min_mapq"],
            exclude_flags=config["genomics"]["exclude_flags"],
        script:
            "../../scripts/genomics_ingest.py"

    localrules:
        genomics_reference,
