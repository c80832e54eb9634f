"""The subject model: one prediction per subject from imaging, genomics, or both fused.

``features`` builds each subject's genomics vector (QC autoencoder latent code, normalised
coverage over regions, variant dosages) and standardises it with training-fold statistics;
``models`` holds the folds and the single-modality models; ``fusion`` cross-validates the four
models (imaging only, genomics only, late and intermediate fusion); ``evaluate`` scores them
(AUROC, balanced accuracy, paired bootstrap of fused minus the best single modality, ROC
figure); ``bundle`` writes the fused model as a bundle and applies it to a new cohort; ``run``
holds the rules' entry functions.
"""
