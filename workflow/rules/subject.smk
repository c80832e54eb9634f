# Subject stage: one row per subject joining both modalities (subjects.tsv and its data
# dictionary), and the association of imaging-derived phenotypes with genotypes (genotype QC,
# then plink2 --glm's per-variant OLS with Manhattan and QQ plots per phenotype).


rule subject_table:
    input:
        unpack(IN.subject_table_inputs),
        sheet=L("sheet"),
    output:
        table=L("subject_table"),
        columns=L("subject_columns"),
    log:
        L.log("subject_table"),
    benchmark:
        L.bench("subject_table")
    conda:
        "../../envs/genetics.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(30),
    params:
        imaging_subjects=list(PLAN.imaging_subjects),
        genomics_subjects=list(PLAN.genomics_subjects),
        channels=list(PLAN.channels),
        channel_columns=list(PLAN.channel_columns),
        lesion_label=GEN.lesion_label,
    script:
        "../../scripts/subject_table.py"


if GEN.enabled:

    rule genetics_genotypes:
        input:
            vcfs=IN.genetics_vcfs,
        output:
            bed=f"{L('genotypes')}.bed",
            bim=f"{L('genotypes')}.bim",
            fam=f"{L('genotypes')}.fam",
            qc=L("genotype_qc"),
            qc_samples=L("genotype_qc").removesuffix(".tsv") + ".samples.tsv",
            summary=L("genotype_summary"),
        log:
            L.log("genetics/genotypes"),
        benchmark:
            L.bench("genetics/genotypes")
        conda:
            "../../envs/genetics.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(60),
        params:
            subjects=IN.genetics_vcf_subjects(),
            cohort_vcf=GEN.cohort_vcf,
            samples=list(GEN.subjects),
            absent_as_ref=GEN.absent_as_ref,
            qc=dict(GEN.qc),
        script:
            "../../scripts/genetics_genotypes.py"

    rule genetics_association:
        input:
            bed=f"{L('genotypes')}.bed",
            bim=f"{L('genotypes')}.bim",
            fam=f"{L('genotypes')}.fam",
            table=L("subject_table"),
        output:
            summary=L("association_json"),
            tables=IN.association_outputs("glm.linear"),
            manhattan=IN.association_outputs("manhattan.png"),
            qq=IN.association_outputs("qq.png"),
        log:
            L.log("genetics/association"),
        benchmark:
            L.bench("genetics/association")
        conda:
            "../../envs/genetics.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(60),
        params:
            phenotypes=list(GEN.phenotypes),
            covariates=list(GEN.covariates),
            n_pcs=GEN.n_pcs,
            pcs_min_samples=GEN.pcs_min_samples,
            pcs_min_variants=GEN.pcs_min_variants,
            seed=config["seed"],
        script:
            "../../scripts/genetics_association.py"


localrules:
    subject_table,
