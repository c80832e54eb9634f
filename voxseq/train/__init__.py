"""Training: a generic loop (checkpoints, resume, seeds, AMP) and one task per modality."""
