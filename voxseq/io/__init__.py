"""Input/output helpers shared by every stage: atomic writes, NIfTI, tables, sample sheets."""
