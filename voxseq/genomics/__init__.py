"""Genomics track: reference and alignment checks, binned coverage, genome windows, variants.

One module per concept: :mod:`reference` (FASTA + index), :mod:`ingest` (input checks and read
counts), :mod:`coverage` (filtered per-base depth pooled into normalised bins), :mod:`sequence`
(one-hot encoding), :mod:`windows` (the training/evaluation windows in HDF5), :mod:`variants`
(VCF reading and variant-effect scores), :mod:`metrics`, :mod:`bigwig` and :mod:`plots`.
"""
