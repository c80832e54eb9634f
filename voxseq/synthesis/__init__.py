"""Missing-sequence synthesis (BraTS "BraSyn"): a conditional GAN (3D pix2pix) from a subject's
available imaging channels to a missing one, its baselines, BraSyn scoring, outputs and bundles.

Modules: :mod:`~voxseq.synthesis.metrics` (BraSyn scores), :mod:`~voxseq.synthesis.gan` (the
training task), :mod:`~voxseq.synthesis.baselines`, :mod:`~voxseq.synthesis.train` (training and
the bundle), :mod:`~voxseq.synthesis.apply` (whole volumes, NIfTI, metrics tables) and
:mod:`~voxseq.synthesis.plan` (what can be trained, which bundle fits a cohort).
"""
