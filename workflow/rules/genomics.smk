# Genomics track: reference check -> per-subject ingest + coverage -> genome windows (HDF5)
# -> sequence model (bundle) -> predicted tracks, test metrics and variant effects.
# The split is by contig (genomics.val_contigs / test_contigs), not by subject.


# Tables of this track (candidates for common.smk): subjects with a VCF, in input order;
# the variant truth that gives vep_auroc (genomics.variant_truth, else the demo's, else none).
GENOMICS_VCF_SUBJECTS = [s for s in GENOMICS_SUBJECTS if SUBJECTS[s]["vcf"]]
GENOMICS_VCFS = [SUBJECTS[s]["vcf"] for s in GENOMICS_VCF_SUBJECTS]
GENOMICS_BLACKLIST = (config["genomics"].get("blacklist") or []) if GENOMICS else []
if GENOMICS and config["genomics"].get("variant_truth"):
    GENOMICS_TRUTH = config["genomics"]["variant_truth"]
elif DEMO and config["demo"]["genomics"]:
    GENOMICS_TRUTH = f"{DEMO_DIR}/genomics/variant_truth.tsv"
else:
    GENOMICS_TRUTH = []


if GENOMICS:

    rule genomics_reference:
        input:
            fasta=config["genomics"]["reference"],
        output:
            contigs=f"{RES}/genomics/ingest/reference_contigs.tsv",
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
            fasta=config["genomics"]["reference"],
            contigs=f"{RES}/genomics/ingest/reference_contigs.tsv",
        output:
            report=f"{RES}/genomics/ingest/{{subject}}.json",
        log:
            f"{LOGS}/genomics/ingest/{{subject}}.log",
        benchmark:
            f"{BENCH}/genomics/ingest/{{subject}}.tsv"
        group:
            "genomics_prepare"
        conda:
            "../../envs/genomics.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(2000),
            runtime=per_attempt(60),
        params:
            min_mapq=config["genomics"]["min_mapq"],
            exclude_flags=config["genomics"]["exclude_flags"],
        script:
            "../../scripts/genomics_ingest.py"

    rule genomics_coverage:
        input:
            bam=get_bam,
            fasta=config["genomics"]["reference"],
            report=f"{RES}/genomics/ingest/{{subject}}.json",
            blacklist=GENOMICS_BLACKLIST,
        output:
            coverage=f"{RES}/genomics/coverage/{{subject}}.h5",
        log:
            f"{LOGS}/genomics/coverage/{{subject}}.log",
        benchmark:
            f"{BENCH}/genomics/coverage/{{subject}}.tsv"
        group:
            "genomics_prepare"
        conda:
            "../../envs/genomics.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(120),
        params:
            bin_size=config["genomics"]["bin_size"],
            min_mapq=config["genomics"]["min_mapq"],
            exclude_flags=config["genomics"]["exclude_flags"],
            normalisation=config["genomics"]["normalisation"],
            count_deletions=config["genomics"]["count_deletions"],
        script:
            "../../scripts/genomics_coverage.py"

    rule genomics_tile:
        input:
            fasta=config["genomics"]["reference"],
            coverage=expand(
                f"{RES}/genomics/coverage/{{subject}}.h5", subject=GENOMICS_SUBJECTS
            ),
        output:
            windows=f"{RES}/genomics/tile/windows.h5",
            table=f"{RES}/genomics/tile/windows.tsv",
        log:
            f"{LOGS}/genomics/tile.log",
        benchmark:
            f"{BENCH}/genomics/tile.tsv"
        conda:
            "../../envs/genomics.yaml"
        threads: 1
        resources:
            mem_mb=get_input_scaled_mem_mb,
            runtime=per_attempt(60),
        params:
            subjects=GENOMICS_SUBJECTS,
            window=config["genomics"]["window"],
            stride=config["genomics"]["stride"],
            max_n_fraction=config["genomics"]["max_n_fraction"],
            val_contigs=config["genomics"]["val_contigs"],
            test_contigs=config["genomics"]["test_contigs"],
            soft_clip=config["genomics"]["soft_clip"],
        script:
            "../../scripts/genomics_tile.py"

    if TRAIN_GENOMICS:

        rule genomics_train:
            input:
                windows=f"{RES}/genomics/tile/windows.h5",
                sheet=SHEET,
            output:
                bundle=get_genomics_bundle_files(),
                metrics=f"{RES}/genomics/train/metrics.tsv",
            log:
                f"{LOGS}/genomics/train.log",
            benchmark:
                f"{BENCH}/genomics/train.tsv"
            conda:
                "../../envs/torch.yaml"
            threads: 2
            resources:
                mem_mb=per_attempt(8000),
                runtime=per_attempt(240),
                gpu=1,
            params:
                workdir=f"{RES}/genomics/train/checkpoints",
                model=config["genomics"]["model"],
                train=config["genomics"]["train"],
                augment_shift=config["genomics"]["augment_shift"],
                seed=config["seed"],
                cohort=COHORT,
                cfg=config["genomics"],
            script:
                "../../scripts/genomics_train.py"

    rule genomics_infer:
        input:
            bundle=get_genomics_bundle_files(),
            fasta=config["genomics"]["reference"],
            windows=f"{RES}/genomics/tile/windows.h5",
            vcfs=GENOMICS_VCFS,
            truth=GENOMICS_TRUTH,
        output:
            bigwig=directory(f"{RES}/genomics/infer/bigwig"),
            pearson=f"{RES}/genomics/infer/test_pearson.tsv",
            variants=f"{RES}/genomics/infer/variant_scores.tsv",
            track_plot=report(
                f"{RES}/genomics/report/observed_vs_predicted.png",
                caption="../report/observed_vs_predicted.rst",
                category="Genomics",
            ),
            pearson_plot=report(
                f"{RES}/genomics/report/pearson_per_track.png",
                caption="../report/pearson_per_track.rst",
                category="Genomics",
            ),
            cohort=f"{RES}/genomics/cohort.json",
        log:
            f"{LOGS}/genomics/infer.log",
        benchmark:
            f"{BENCH}/genomics/infer.tsv"
        conda:
            "../../envs/torch.yaml"
        threads: 2
        resources:
            mem_mb=per_attempt(8000),
            runtime=per_attempt(120),
            gpu=1,
        params:
            subjects=GENOMICS_SUBJECTS,
            vcf_subjects=GENOMICS_VCF_SUBJECTS,
            genome_wide=config["genomics"]["infer"]["genome_wide"],
            variant_bins=config["genomics"]["infer"]["variant_bins"],
            batch_size=config["genomics"]["infer"]["batch_size"],
            device=config["genomics"]["train"]["device"],
        script:
            "../../scripts/genomics_infer.py"

    localrules:
        genomics_reference,
