"""Inference: apply a trained model (bundle) to every subject of a cohort."""
