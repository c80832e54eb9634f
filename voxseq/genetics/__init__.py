"""Imaging genetics: cohort genotypes, variant QC, PLINK 1 files, plink2-equal association."""
