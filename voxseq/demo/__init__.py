"""Deterministic synthetic demo cohorts (imaging and genomics), written as ordinary input files."""
