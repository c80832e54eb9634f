"""Imaging stages: ingest, resample, intensity normalisation, zarr stores, patches, stitching."""
