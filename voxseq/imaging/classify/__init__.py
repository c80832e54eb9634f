"""Subject-level imaging classification: cross-validated 3D (or 2D) ResNet / VGG classifiers.

The data are the normalised OME-Zarr stores (nothing is re-ingested). Each subject becomes one
fixed-size input: its volume (optionally cropped to the body's bounding box) resampled to
``input_size``, plus, with ``with_segmentation``, the segmentation's probability of each
foreground label as further channels (``seg_<label>``, e.g. ``seg_lesion``). An
``input_size`` whose last axis is 1 takes the central axial slice and a 2D network.

Cross-validation: the labelled train + val subjects are split into ``folds`` folds, stratified by
class and deterministic from the seed. Fold ``k`` is held out (its subjects get their out-of-fold
prediction from this fold's model), fold ``k + 1`` (mod ``folds``) is the validation set for
early stopping and the best epoch, the rest trains. The folds' models together are one bundle (a
:class:`voxseq.models.classifiers.ClassifierEnsemble`, mean probability), which predicts the test
split and any new cohort.

The package: :mod:`~voxseq.imaging.classify.data` (classes, folds, inputs, augmentation),
:mod:`~voxseq.imaging.classify.checks` (refusals at planning time),
:mod:`~voxseq.imaging.classify.train` (one fold's model, the ensemble bundle) and
:mod:`~voxseq.imaging.classify.predict` (probabilities, metrics, figures of a cohort).
"""

from __future__ import annotations

from voxseq.imaging.classify.checks import check_bundle_fits, check_classes
from voxseq.imaging.classify.data import (
    IMAGE,
    SEG_PREFIX,
    augment_sample,
    body_box,
    channel_names,
    classifier_input,
    fold_roles,
    stack_inputs,
    stratified_folds,
    subject_classes,
)
from voxseq.imaging.classify.predict import classify_cohort, predict_cohort, predict_proba
from voxseq.imaging.classify.train import (
    LOSS_TIEBREAK,
    ClassificationTask,
    architecture,
    train_fold,
    write_ensemble_bundle,
)

__all__ = [
    "IMAGE",
    "LOSS_TIEBREAK",
    "SEG_PREFIX",
    "ClassificationTask",
    "architecture",
    "augment_sample",
    "body_box",
    "channel_names",
    "check_bundle_fits",
    "check_classes",
    "classifier_input",
    "classify_cohort",
    "fold_roles",
    "predict_cohort",
    "predict_proba",
    "stack_inputs",
    "stratified_folds",
    "subject_classes",
    "train_fold",
    "write_ensemble_bundle",
]
