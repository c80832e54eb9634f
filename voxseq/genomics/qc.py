"""Genomics quality control: coarse log-coverage profiles, residual z-scores, region calls.

The numerical core around an autoencoder trained on the cohort's coverage profiles (the network
itself lives elsewhere): :func:`coarse_profiles` turns each subject's coverage store (see
:mod:`voxseq.genomics.coverage`) into one library-size normalised log2 profile over coarse bins,
:func:`residual_z` turns the model's reconstructions into per-bin robust z-scores,
:func:`call_regions` finds runs of bins with large same-signed z (candidate copy-number changes
or coverage artefacts), :func:`region_overlap` / :func:`covered_fraction` compare calls with a
planted truth, and :func:`subject_scores` turns per-subject reconstruction errors into robust
outlier scores (shared with the imaging modality; pure numpy).

Profile (per subject ``i`` and kept coarse bin ``b``)::

    c_ib   = raw read-base count summed over the fine bins of b, scaled to a full bin
             (times bin_size / bin length; only the last, partial bin of a contig differs)
    s_i    = median_b c_ib                    (median count per kept bin: the library scale)
    v_ib   = log2((c_ib + 1) / s_i)           (about 0 for a bin at the subject's mean depth)

A coarse bin is dropped (``keep`` False) when any fine bin inside it is blacklisted (the
``mask`` of any subject's store), when it is the last bin of a contig and covers less than half
of ``bin_size``, or when its cohort median depth is low: each subject's counts are first divided
by its mean count over the bins left by the two rules before, and bins whose median over
subjects is below ``min_median_fraction`` (default 0.1) times the median of those bin medians
are dropped (N stretches, unmappable sequence). The library scale ``s_i`` is then taken over the
kept bins.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from voxseq import VoxseqError
from voxseq.genomics.coverage import n_bins, read_coverage
from voxseq.qc.scores import MAD_SCALE

log = logging.getLogger(__name__)


@dataclass
class Profiles:
    """Coarse log2 coverage profiles of a cohort.

    Attributes
    ----------
    subjects : list of str
        Row order of ``values``.
    values : (N, B_kept) float32
        ``log2((count + 1) / library_scale)`` per subject and kept bin (module docstring).
    contig : (B_kept,) str array
        Contig of each kept bin; bins are in reference order, then by position.
    start, end : (B_kept,) int64
        0-based half-open bp coordinates of each kept bin (``end`` is the contig length for the
        last, partial bin).
    keep : (B_all,) bool
        Which of all coarse bins (every contig, reference order) were kept.
    bin_size : int
        Coarse bin size in bp.
    contigs : dict
        Reference contigs in order, name -> length (for genome coordinates). When empty,
        :meth:`positions` and :meth:`boundaries` use the contigs of the kept bins, each as long
        as its last kept bin's end.
    library_scale : (N,) float64 or None
        Each subject's median count per kept bin (the ``s_i`` of the module docstring).
    """

    subjects: list[str]
    values: np.ndarray
    contig: np.ndarray
    start: np.ndarray
    end: np.ndarray
    keep: np.ndarray
    bin_size: int
    contigs: dict[str, int] = field(default_factory=dict)
    library_scale: np.ndarray | None = None

    def _lengths(self) -> dict[str, int]:
        if self.contigs:
            return dict(self.contigs)
        out: dict[str, int] = {}
        for c, e in zip(self.contig.tolist(), self.end.tolist(), strict=True):
            out[c] = max(out.get(c, 0), int(e))
        return out

    def _offsets(self) -> dict[str, int]:
        offsets, total = {}, 0
        for c, length in self._lengths().items():
            offsets[c] = total
            total += length
        return offsets

    def positions(self) -> np.ndarray:
        """Genome coordinate of each kept bin's centre: contigs laid end to end in order.

        Returns
        -------
        numpy.ndarray
            ``(B_kept,)`` float64, bp from the start of the first contig.
        """
        offsets = self._offsets()
        base = np.array([offsets[c] for c in self.contig.tolist()], dtype=np.float64)
        return base + (self.start + self.end) / 2.0

    def boundaries(self) -> list[tuple[int, str]]:
        """``(cumulative start, contig)`` of every contig, in order (for plot separators)."""
        return [(start, c) for c, start in self._offsets().items()]


def _store(subject: str, path: str | Path, key: str) -> tuple[dict, dict[str, np.ndarray]]:
    """``read_coverage`` with the subject named in every error."""
    path = Path(path)
    if not path.is_file():
        raise VoxseqError(f"subject {subject}: coverage store {path}: file not found")
    try:
        return read_coverage(path, key=key)
    except VoxseqError as exc:
        raise VoxseqError(f"subject {subject}: {exc}") from exc
    except (OSError, KeyError, ValueError) as exc:
        raise VoxseqError(f"subject {subject}: coverage store {path} cannot be read as a "
                          f"coverage store ({type(exc).__name__}: {exc})") from exc


def coarse_profiles(paths: dict[str, str | Path], bin_size: int,
                    min_median_fraction: float = 0.1, keep: np.ndarray | None = None
                    ) -> Profiles:
    """Library-size normalised log2 coverage of every subject over coarse bins.

    Parameters
    ----------
    paths
        Subject -> coverage store written by :func:`voxseq.genomics.coverage.compute_coverage`;
        the dict order is the row order.
    bin_size
        Coarse bin size in bp: a positive multiple of the stores' bin size.
    min_median_fraction
        Bins whose (library-normalised) cohort median count is below this fraction of the median
        of all bin medians are dropped; when that median is 0, bins with a cohort median of 0
        are dropped.
    keep
        The kept bins of another cohort (a QC bundle's), instead of choosing them here: a new
        cohort is profiled over exactly the bins its autoencoder was trained on.

    Returns
    -------
    Profiles
        See the module docstring for the values and the dropped bins.

    Raises
    ------
    VoxseqError
        No subjects; a store missing or unreadable; ``bin_size`` not a multiple of a store's
        bin size; stores that disagree on bin size, contigs or lengths (the first store that
        differs from the first one is named); a subject with no counted bases in the kept bins;
        no bin kept at all.
    """
    if not paths:
        raise VoxseqError("genomics QC: no coverage stores given")
    subjects = list(paths)
    first_attrs: dict | None = None
    fine = 0
    contigs: dict[str, int] = {}
    counts, blacklisted = [], None
    for subject in subjects:
        path = paths[subject]
        attrs, raw = _store(subject, path, "raw")
        if first_attrs is None:
            first_attrs, fine, contigs = attrs, int(attrs["bin_size"]), dict(attrs["contigs"])
            if bin_size < fine or bin_size % fine:
                raise VoxseqError(f"subject {subject}: genomics QC bin size {bin_size} bp is not "
                                  f"a positive multiple of the bin size {fine} bp of coverage "
                                  f"store {path}")
        elif int(attrs["bin_size"]) != fine:
            raise VoxseqError(f"subject {subject}: coverage store {path} has bin size "
                              f"{attrs['bin_size']} bp, the first store ({paths[subjects[0]]}) "
                              f"{fine} bp")
        elif list(attrs["contigs"].items()) != list(contigs.items()):
            raise VoxseqError(f"subject {subject}: coverage store {path} was made on other "
                              f"contigs or lengths than the first store ({paths[subjects[0]]}): "
                              f"{_contig_diff(contigs, attrs['contigs'])}")
        _, mask = _store(subject, path, "mask")
        k = bin_size // fine
        row, masked = [], []
        for c, length in contigs.items():
            if len(raw[c]) != n_bins(length, fine) or len(mask[c]) != len(raw[c]):
                raise VoxseqError(f"subject {subject}: coverage store {path}: contig {c} has "
                                  f"{len(raw[c])} raw / {len(mask[c])} mask bins, expected "
                                  f"{n_bins(length, fine)} ({length} bp in {fine} bp bins)")
            row.append(_pool(raw[c].astype(np.float64), k, np.add))
            masked.append(_pool(mask[c].astype(bool), k, np.logical_or))
        counts.append(np.concatenate(row))
        masked_row = np.concatenate(masked)
        blacklisted = masked_row if blacklisted is None else blacklisted | masked_row
    counts_arr = np.stack(counts)  # (N, B_all)

    names, starts, ends = [], [], []
    for c, length in contigs.items():
        s = np.arange(n_bins(length, bin_size), dtype=np.int64) * bin_size
        names += [c] * len(s)
        starts.append(s)
        ends.append(np.minimum(s + bin_size, length))
    start_all, end_all = np.concatenate(starts), np.concatenate(ends)
    contig_all = np.array(names, dtype=str)
    short = (end_all - start_all) * 2 < bin_size
    counts_arr *= bin_size / (end_all - start_all)[None, :]  # partial bins as full ones

    usable = ~blacklisted & ~short
    if not usable.any():
        raise VoxseqError(f"genomics QC: no {bin_size} bp bin is free of the blacklist in "
                          f"coverage store {paths[subjects[0]]}")
    prelim = counts_arr[:, usable].mean(axis=1)
    _check_depth(prelim, subjects, paths, "outside the blacklist")
    medians = np.median(counts_arr / prelim[:, None], axis=0)
    ref = float(np.median(medians[usable]))
    low = medians < min_median_fraction * ref if ref > 0 else medians <= 0
    if keep is None:
        keep = usable & ~low
    elif len(keep) != len(usable):
        raise VoxseqError(f"genomics QC: the QC model's {len(keep)} bins of {bin_size} bp do not "
                          f"fit this reference's {len(usable)} (stores such as "
                          f"{paths[subjects[0]]}); was it trained on another reference?")
    else:
        keep = np.asarray(keep, dtype=bool)
    if not keep.any():
        raise VoxseqError(f"genomics QC: every {bin_size} bp bin is blacklisted, partial or of "
                          f"low cohort coverage (stores such as {paths[subjects[0]]})")
    scale = np.median(counts_arr[:, keep], axis=1)  # a median: a large gain moves it little
    _check_depth(scale, subjects, paths, "in the kept bins")
    values = np.log2((counts_arr[:, keep] + 1.0) / scale[:, None]).astype(np.float32)
    log.info("genomics QC: %d subjects, %d of %d bins of %d bp kept (%d blacklisted, %d short "
             "partial, %d of low cohort coverage)", len(subjects), int(keep.sum()), len(keep),
             bin_size, int(blacklisted.sum()), int((short & ~blacklisted).sum()),
             int((low & usable).sum()))
    return Profiles(subjects=subjects, values=values, contig=contig_all[keep],
                    start=start_all[keep], end=end_all[keep], keep=keep, bin_size=bin_size,
                    contigs=contigs, library_scale=scale)


def _pool(x: np.ndarray, k: int, ufunc: np.ufunc) -> np.ndarray:
    """Reduce consecutive groups of ``k`` elements (the last group may be short)."""
    return ufunc.reduceat(x, np.arange(0, len(x), k)) if len(x) else x


def _contig_diff(a: dict[str, int], b: dict[str, int]) -> str:
    if list(a) != list(b):
        only_a, only_b = [c for c in a if c not in b], [c for c in b if c not in a]
        if only_a or only_b:
            return f"contigs only in the first: {only_a[:5]}, only in this one: {only_b[:5]}"
        return "same contigs in another order"
    diff = [f"{c} {a[c]} vs {b[c]} bp" for c in a if a[c] != b[c]]
    return "lengths differ: " + ", ".join(diff[:5])


def _check_depth(scale: np.ndarray, subjects: list[str], paths: dict, where: str) -> None:
    empty = [s for s, v in zip(subjects, scale, strict=True) if not v > 0]
    if empty:
        raise VoxseqError(f"subject {empty[0]}: coverage store {paths[empty[0]]} has no counted "
                          f"bases {where}; cannot normalise by library size")


def bin_standardisation(values: np.ndarray, train_rows: Sequence[int],
                        floor_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin centre (median over the training rows) and spread (1.4826 MAD, floored at
    ``floor_fraction`` times the median spread over bins, and at 1e-6): the autoencoder sees
    ``(values - centre) / spread``, and :func:`residual_z` standardises residuals alike."""
    ref = np.asarray(values, dtype=np.float64)[np.asarray(train_rows)]
    centre = np.median(ref, axis=0)
    spread = MAD_SCALE * np.median(np.abs(ref - centre), axis=0)
    floor = max(floor_fraction * float(np.median(spread)), 1e-6)
    return centre, np.maximum(spread, floor)


def residual_z(values: np.ndarray, reconstruction: np.ndarray,
               train_rows: Sequence[int] | np.ndarray, floor_fraction: float = 0.5) -> np.ndarray:
    """Robust per-bin z-scores of the reconstruction residuals.

    ``r = values - reconstruction``; per bin, the centre is the median of ``r`` over the training
    rows and the spread ``1.4826 * MAD`` over them, floored at ``floor_fraction`` times the
    median over bins of those spreads (bins where the reference subjects happen to agree would
    otherwise give huge z), and in any case at 1e-6.

    Parameters
    ----------
    values, reconstruction
        ``(N, B)`` arrays of the same shape.
    train_rows
        Row indices (or an ``(N,)`` boolean mask) of the reference subjects.
    floor_fraction
        See above.

    Returns
    -------
    numpy.ndarray
        ``(N, B)`` float32 z-scores, every row (training or not) against the same reference.
    """
    values = np.asarray(values, dtype=np.float64)
    reconstruction = np.asarray(reconstruction, dtype=np.float64)
    if values.ndim != 2 or values.shape != reconstruction.shape:
        raise VoxseqError(f"residual_z: values {values.shape} and reconstruction "
                          f"{reconstruction.shape} must be (N, B) of the same shape")
    r = values - reconstruction
    if len(r[np.asarray(train_rows)]) == 0:
        raise VoxseqError("residual_z: no training rows given")
    centre, spread = bin_standardisation(r, train_rows, floor_fraction)
    return ((r - centre) / spread).astype(np.float32)


def call_regions(z_row: np.ndarray, profiles: Profiles, threshold: float = 3.0,
                 min_bins: int = 2, max_gap: int = 1) -> list[dict]:
    """Runs of consecutive kept bins with large z of one sign, as regions.

    A run is a maximal stretch of kept bins on one contig, each with ``|z| > threshold`` and the
    same sign. A kept bin below the threshold (or NaN) ends the run; dropped bins between two
    kept bins are bridged when there are at most ``max_gap`` of them (default 1: one blacklisted
    or low-coverage bin does not split a region), and a longer gap ends the run. The region
    spans the bridged bins too.

    Parameters
    ----------
    z_row
        ``(B_kept,)`` z-scores of one subject (a row of :func:`residual_z`).
    profiles
        The profiles the z-scores come from (bin coordinates).
    threshold, min_bins, max_gap
        See above; runs with fewer than ``min_bins`` kept bins are not reported.

    Returns
    -------
    list of dict
        ``{contig, start, end, n_bins, mean_z}`` in genome order; ``start``/``end`` are 0-based
        half open bp (start of the first bin, end of the last), ``n_bins`` counts kept bins and
        ``mean_z`` is their mean z (its sign is the direction).
    """
    z = np.asarray(z_row, dtype=np.float64)
    if z.shape != (len(profiles.start),):
        raise VoxseqError(f"call_regions: z has shape {z.shape}, the profiles have "
                          f"{len(profiles.start)} kept bins")
    with np.errstate(invalid="ignore"):
        sign = np.where(np.abs(z) > threshold, np.sign(z), 0.0)
    contig, start, end = profiles.contig, profiles.start, profiles.end
    regions: list[dict] = []
    run: list[int] = []

    def close() -> None:
        if len(run) >= min_bins:
            regions.append({"contig": str(contig[run[0]]), "start": int(start[run[0]]),
                            "end": int(end[run[-1]]), "n_bins": len(run),
                            "mean_z": float(z[run].mean())})
        run.clear()

    for i in range(len(z)):
        if sign[i] == 0:
            close()
            continue
        if run:
            j = run[-1]
            joined = (contig[i] == contig[j] and sign[i] == sign[j]
                      and start[i] - end[j] <= max_gap * profiles.bin_size)
            if not joined:
                close()
        run.append(i)
    close()
    return regions


def region_overlap(called: list[dict], truth: dict) -> float:
    """Largest reciprocal overlap of one called region with a truth interval.

    ``max over called regions on the truth's contig of overlap_bp / max(len(truth),
    len(region))``: 1 only for an exact match, and at least ``f`` means one region covers at
    least ``f`` of the truth and at least ``f`` of that region is inside the truth. 0.0 when no
    region touches the truth. Intervals are ``{contig, start, end}``, 0-based half open.
    """
    t0, t1 = int(truth["start"]), int(truth["end"])
    if t1 <= t0:
        raise VoxseqError(f"region_overlap: empty truth interval {truth}")
    best = 0.0
    for r in called:
        if r["contig"] != truth["contig"]:
            continue
        r0, r1 = int(r["start"]), int(r["end"])
        inter = min(t1, r1) - max(t0, r0)
        if inter > 0:
            best = max(best, inter / max(t1 - t0, r1 - r0))
    return best


def covered_fraction(called: list[dict], truth: dict) -> float:
    """Fraction of the truth interval's bp inside the union of the called regions (any number)."""
    t0, t1 = int(truth["start"]), int(truth["end"])
    if t1 <= t0:
        raise VoxseqError(f"covered_fraction: empty truth interval {truth}")
    parts = sorted((max(int(r["start"]), t0), min(int(r["end"]), t1)) for r in called
                   if r["contig"] == truth["contig"])
    covered, reach = 0, t0
    for a, b in parts:
        a = max(a, reach)
        if b > a:
            covered += b - a
            reach = b
    return covered / (t1 - t0)


# ---- the autoencoder around the profiles ---------------------------------------------------------
TASK = "qc"


def train_genomics_qc(paths: dict[str, str | Path], train: Sequence[str], val: Sequence[str],
                      cfg: dict, seed: int, workdir: str | Path, metrics_path: str | Path,
                      bundle_dir: str | Path, digest: str,
                      out_of_fold: str | Path | None = None) -> dict:
    """Train the profile autoencoder on the ``train`` subjects' profiles; write its bundle.

    ``paths`` are the coverage stores of the training cohort (their cohort medians choose the
    kept bins); ``cfg`` the ``qc.genomics`` block plus ``threshold``. The bundle records the
    kept bins, the per-bin standardisation, the training subjects' reconstruction errors and
    the per-bin residual centre and spread, so a new cohort is scored against this one.
    ``out_of_fold``: where the training subjects' out-of-fold reconstructions go
    (:func:`voxseq.qc.autoencoder.write_out_of_fold`), so this cohort's training subjects are
    scored by models that did not see them.
    """
    import torch

    from voxseq.bundle import write_bundle
    from voxseq.models import build_model
    from voxseq.qc.autoencoder import subject_errors, train_autoencoder, write_out_of_fold
    from voxseq.qc.scores import enough_reference

    prof = coarse_profiles(paths, int(cfg["bin_size"]))
    row = {s: i for i, s in enumerate(prof.subjects)}
    tr, va = [row[s] for s in train], [row[s] for s in val]
    centre, spread = bin_standardisation(prof.values, tr)
    x = ((prof.values - centre) / spread).astype(np.float32)
    arch = {"n_bins": int(x.shape[1]), "hidden": int(cfg["model"]["hidden"]),
            "latent": int(cfg["model"]["latent"]), "dropout": float(cfg["model"]["dropout"])}
    threshold = float(cfg["threshold"]) if enough_reference(len(tr)) else float("inf")
    model, dropped, kept, recon, oof = train_autoencoder(
        lambda: build_model("profile_autoencoder", **arch), x, tr, va, cfg["train"], seed,
        float(cfg["noise"]), threshold, workdir, metrics_path, digest, "genomics QC autoencoder",
        reference_folds=int(cfg.get("reference_folds", 5)))
    if out_of_fold is not None:
        write_out_of_fold(out_of_fold, list(train), x[tr], oof)
    errors = subject_errors(x[kept], recon)
    r_centre, r_spread = bin_standardisation(x[kept] - recon, range(len(kept)))
    by_row = {i: s for s, i in row.items()}
    return write_bundle(
        bundle_dir, model, "genomics", "profile_autoencoder", arch,
        {"bin_size": prof.bin_size, "contigs": prof.contigs, "keep": prof.keep.tolist(),
         "centre": centre.tolist(), "spread": spread.tolist()},
        {"train_error_median": float(np.median(errors)) if len(errors) else None},
        {"train_subjects": list(train), "val_subjects": list(val), "seed": seed},
        example_input=torch.from_numpy(x[:1]),
        extra={"task": TASK, "reference": {
            "subjects": [by_row[r] for r in kept], "errors": [float(e) for e in errors],
            "left_out": [by_row[r] for r in dropped],
            "residual_centre": r_centre.tolist(), "residual_spread": r_spread.tolist()}})


def score_genomics_qc(paths: dict[str, str | Path], bundle: str, threshold: float,
                      z_threshold: float = 3.0, min_bins: int = 3,
                      out_of_fold: str | Path | None = None
                      ) -> tuple[list[dict], list[dict], np.ndarray, dict]:
    """Score every subject with a genomics QC bundle.

    ``out_of_fold``: the training rule's out-of-fold reconstructions when this is the cohort
    the bundle was trained on; its training subjects are then scored (error, z, regions) with
    them instead of with the final model, which saw them.

    Returns
    -------
    rows
        Per subject: ``subject``, ``error``, ``score`` (NaN when the bundle has fewer than 5
        reference subjects), ``flagged``, ``reason``.
    regions
        Candidate copy-number deviations of every subject (``subject`` added to
        :func:`call_regions`' dicts).
    codes
        (N, latent) latent codes.
    arrays
        ``profiles``, ``input`` and ``reconstruction`` (standardised, (N, B)) and ``z``.
    """
    from voxseq.bundle import load_bundle
    from voxseq.qc.autoencoder import apply_out_of_fold, reconstruct, subject_errors
    from voxseq.qc.scores import score_rows

    model, meta = load_bundle(bundle, "genomics")
    if meta.get("task") != TASK:
        raise VoxseqError(f"bundle {bundle} is not a genomics QC bundle "
                          f"(task {meta.get('task')!r})")
    pre, ref = meta["preprocessing"], meta["reference"]
    prof = coarse_profiles(paths, int(pre["bin_size"]), keep=np.array(pre["keep"], dtype=bool))
    if dict(prof.contigs) != dict(pre["contigs"]):
        raise VoxseqError(f"genomics QC bundle {bundle} was trained on other contigs than this "
                          f"cohort's coverage ({_contig_diff(pre['contigs'], prof.contigs)})")
    x = ((prof.values - np.array(pre["centre"])) / np.array(pre["spread"])).astype(np.float32)
    recon, codes = reconstruct(model, x, "cpu")
    held = apply_out_of_fold(out_of_fold, prof.subjects, x, recon)
    errors = subject_errors(x, recon)
    z = ((x - recon - np.array(ref["residual_centre"]))
         / np.array(ref["residual_spread"])).astype(np.float32)
    regions, notes = [], {s: ["scored out of fold"] for s in held}
    for i, s in enumerate(prof.subjects):
        calls = call_regions(z[i], prof, z_threshold, min_bins)
        regions += [{"subject": s, **c} for c in calls]
        if calls:
            notes.setdefault(s, []).append(f"{len(calls)} candidate copy-number region(s)")
    rows = score_rows(prof.subjects, errors, ref, threshold, notes)
    return rows, regions, codes, {"profiles": prof, "input": x, "reconstruction": recon, "z": z}
