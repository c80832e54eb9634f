# Stage 1, ingest: the demo cohort (when enabled), the resolved sample sheet, per-subject checks
# (imaging: NIfTI; genomics: the reference, then each BAM/CRAM and VCF against it).


if DEMO:

    rule demo_cohort:
        output:
            sheet=f"{DEMO_DIR}/samples.tsv",
            files=get_demo_outputs()[1:],
        log:
            f"{LOGS}/demo_cohort.log",
        benchmark:
            f"{BENCH}/demo_cohort.tsv"
        conda:
            "../../envs/demo.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(30),
        params:
            subjects=demo_ids()[0],
            seed=config["seed"],
            demo=config["demo"],
        script:
            "../../scripts/demo_cohort.py"


rule cohort_sheet:
    input:
        sheet=get_sample_sheet,
    output:
        sheet=SHEET,
        record=SHEET_RECORD,
    log:
        f"{LOGS}/cohort_sheet.log",
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(1000),
        runtime=per_attempt(10),
    params:
        seed=config["seed"],
        fractions=get_split_fractions(),
    script:
        "../../scripts/cohort_sheet.py"


rule imaging_ingest:
    input:
        unpack(get_imaging_sources),
    output:
        meta=f"{RES}/imaging/ingest/{{subject}}.json",
        sample=f"{RES}/imaging/ingest/{{subject}}.fg.npy",
    log:
        f"{LOGS}/imaging/ingest/{{subject}}.log",
    benchmark:
        f"{BENCH}/imaging/ingest/{{subject}}.tsv"
    conda:
        "../../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=get_ingest_mem_mb,
        runtime=per_attempt(10),
    params:
        n_labels=len(config["imaging"]["labels"]),
        seed=config["seed"],
        max_voxels=config["imaging"]["max_voxels"],
        channel_columns=CHANNEL_COLUMNS,
        channels=IMAGING_CHANNELS,
        channel_grid=config["imaging"]["channel_grid"],
    script:
        "../../scripts/imaging_ingest.py"


if GENOMICS:

    rule genomics_reference:
        input:
            fasta=get_reference,
        output:
            contigs=f"{RES}/genomics/ingest/reference_contigs.tsv",
            record=REFERENCE_RECORD,
        log:
            f"{LOGS}/genomics/reference.log",
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
            bam=get_bam,
            vcf=get_vcf,
            fasta=get_reference,
            contigs=f"{RES}/genomics/ingest/reference_contigs.tsv",
        output:
            report=f"{RES}/genomics/ingest/{{subject}}.json",
        log:
            f"{LOGS}/genomics/ingest/{{subject}}.log",
        benchmark:
            f"{BENCH}/genomics/ingest/{{subject}}.tsv"
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
