"""Cohort quality control with autoencoders: scores, flags and figures shared by both modalities."""
