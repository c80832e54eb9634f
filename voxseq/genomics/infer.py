"""Apply a genomics bundle to a cohort: predicted tracks, test Pearson R, variant effects.

Pearson R is computed per observed track on the cohort's test windows, in the units the model is
trained on (library-normalised coverage per bin, soft-clipped); both the raw-value R
(``test_pearson_mean``, the headline) and the stricter R of ``log1p`` values are reported. An
observed track whose name (subject) the bundle also predicts is compared with that output; any
other track (a new cohort's subject) is compared with the mean over the bundle's outputs.
BigWig values are predictions in normalised coverage units (soft clip undone).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pysam

from voxseq import VoxseqError
from voxseq.bundle import load_bundle
from voxseq.fit import resolve_device
from voxseq.genomics.bigwig import predict_contig, write_bigwigs
from voxseq.genomics.metrics import PearsonAccumulator, pearson_warnings
from voxseq.genomics.plots import plot_message, plot_pearson, plot_tracks
from voxseq.genomics.train import EVAL_VALUES, predict
from voxseq.genomics.variants import (
    EFFECT_CLASSES,
    NEGATIVE_CLASS,
    read_truth_table,
    read_variants,
    score_variants,
    spearman,
    truth_effects,
    truth_labels,
)
from voxseq.genomics.windows import SPLITS, read_meta, read_windows, unclip
from voxseq.io.atomic import write_json, write_tsv
from voxseq.metrics import auroc

log = logging.getLogger(__name__)


class Predictor:
    """A loaded bundle as a function: one-hot ``(N, L, 4)`` -> ``(N, bins, T)`` target units."""

    def __init__(self, bundle: str | Path, device: str = "auto", batch_size: int = 16,
                 rc_average: bool = True) -> None:
        self.model, self.meta = load_bundle(bundle, "genomics")
        self.prep = self.meta["preprocessing"]
        self.device = resolve_device(device)
        self.model.to(self.device)
        self.batch_size, self.rc_average = batch_size, rc_average
        self.scale = np.asarray(self.prep["target_scale"], dtype=np.float32)
        self.tracks: list[str] = list(self.prep["tracks"])

    def __call__(self, onehot: np.ndarray) -> np.ndarray:
        return predict(self.model, onehot, self.device, self.batch_size, self.rc_average) \
            * self.scale


def check_compatible(prep: dict, wmeta: dict, bundle: str | Path, windows: str | Path) -> None:
    """The cohort's windows must use the bundle's reference contigs, window and bin size."""
    ours, theirs = dict(wmeta.get("contigs", {})), dict(prep.get("contigs", {}))
    if ours != theirs:
        diff = [f"{c}: bundle {theirs.get(c, 'absent')}, cohort {ours.get(c, 'absent')}"
                for c in sorted(set(ours) | set(theirs)) if ours.get(c) != theirs.get(c)]
        raise VoxseqError(f"model bundle {bundle}: reference contigs differ from the cohort's "
                          f"({windows}): {'; '.join(diff[:10])}")
    for key in ("window", "bin_size"):
        if int(prep[key]) != int(wmeta[key]):
            raise VoxseqError(f"model bundle {bundle} expects genomics.{key} = {prep[key]}, but "
                              f"the windows {windows} use {wmeta[key]}; set it in the config")
    if prep.get("normalisation") != wmeta.get("normalisation"):
        log.warning("bundle %s was trained on %s coverage, this cohort uses %s: variant scores "
                    "and bigWigs are in the bundle's units", bundle, prep.get("normalisation"),
                    wmeta.get("normalisation"))


def _eval_chunk(wmeta: dict, read: int = 64) -> int:
    """Test windows whose predictions are pooled per Pearson update: bounded values (as in
    training), a multiple of the ``read`` windows predicted at a time."""
    n_values = int(wmeta["window"]) // int(wmeta["bin_size"]) * max(len(wmeta["tracks"]), 1)
    return max(read, int(np.clip(EVAL_VALUES // n_values, 16, 1024)) // read * read)


def evaluate_test_windows(pred_fn: Predictor, windows: str | Path, wmeta: dict
                          ) -> tuple[list[dict], dict | None, list[str]]:
    """Per observed track Pearson R (raw, log1p) on test windows, a plot region, and warnings.

    The test windows are read 64 at a time and their Pearson merged a chunk at a time
    (:class:`~voxseq.genomics.metrics.PearsonAccumulator`; one chunk, as on the demo, gives the
    in-memory value exactly). A track whose R cannot be computed (no test window, constant
    observed coverage, constant predictions) gets a warning naming the track, the test contigs
    and the reason; its R is NaN and left out of the means.
    """
    tracks = list(wmeta["tracks"])
    model_idx = {t: k for k, t in enumerate(pred_fn.tracks)}
    raw, logp = PearsonAccumulator(len(tracks)), PearsonAccumulator(len(tracks), log1p=True)
    chunk, buf, n_bins = _eval_chunk(wmeta), [], 0
    best: tuple[float, int, np.ndarray, np.ndarray] | None = None  # std, index, obs, pred

    def flush() -> None:
        if buf:
            pred, obs = (np.concatenate(part) for part in zip(*buf, strict=True))
            raw.update(pred, obs)
            logp.update(pred, obs)
            buf.clear()

    with h5py.File(windows, "r") as h5:
        idx = np.flatnonzero(h5["split"][()] == SPLITS.index("test"))
        names = list(wmeta["contigs"])
        contigs = sorted({names[i] for i in h5["contig"][()][idx]}, key=names.index)
        if not len(idx):
            return [], None, ["no test windows (genomics.test_contigs is empty or its contigs "
                              "are shorter than a window): test Pearson not computed"]
        for i in range(0, len(idx), 64):
            seq, obs = read_windows(h5, idx[i:i + 64])
            pred = pred_fn(seq)
            matched = np.stack([pred[..., model_idx[t]] if t in model_idx else pred.mean(-1)
                                for t in tracks], -1)
            buf.append((matched, obs))
            n_bins += obs.shape[0] * obs.shape[1]
            spread = obs.std(axis=(1, 2))
            k = int(np.argmax(spread))
            if best is None or spread[k] > best[0]:  # the first window of the highest spread
                best = (float(spread[k]), int(idx[i + k]), obs[k].copy(), matched[k].copy())
            if sum(len(b[1]) for b in buf) >= chunk:
                flush()
        flush()
        start, contig = int(h5["start"][best[1]]), names[int(h5["contig"][best[1]])]
    r_raw, r_logp = raw.result(), logp.result()
    reasons = raw.reasons()
    warnings = pearson_warnings(tracks, reasons, "test", contigs)
    warnings += pearson_warnings(  # log1p undefined where raw is (e.g. all values negative)
        tracks, [None if why else lw for why, lw in zip(reasons, logp.reasons(), strict=True)],
        "test log1p", contigs)
    rows = [{"track": t, "compared_with": t if t in model_idx else "mean of bundle tracks",
             "pearson": float(r_raw[k]), "pearson_log1p": float(r_logp[k]), "n_bins": n_bins}
            for k, t in enumerate(tracks)]
    region = {"region": f"{contig}:{start + 1}-{start + wmeta['window']}",
              "observed": best[2], "predicted": best[3], "start": start}
    return rows, region, warnings


def cohort_warnings(wmeta: dict, bundle_meta: dict, infer_warnings: list[str]) -> list[str]:
    """This cohort's warnings: its windows file's (small splits, near-empty libraries), the
    test evaluation's, then the bundle's training warnings not already among them (prefixed
    ``model bundle (training):``; the same as this cohort's when it trained the bundle)."""
    out = list(dict.fromkeys([*(wmeta.get("warnings") or []), *infer_warnings]))
    trained = (bundle_meta.get("metrics") or {}).get("warnings") or []
    return out + [f"model bundle (training): {w}" for w in dict.fromkeys(trained)
                  if w not in out]


def _mean(values: np.ndarray) -> float | None:
    """Mean of the finite values, None when there is none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else None


def write_tracks(pred_fn: Predictor, reference: str | Path, contigs: list[str], outdir: Path
                 ) -> list[str]:
    """Stitched predictions over ``contigs`` as one bigWig per bundle track in ``outdir``."""
    prep = pred_fn.prep
    window, bin_size = int(prep["window"]), int(prep["bin_size"])
    with pysam.FastaFile(str(reference)) as fa:
        lengths = dict(zip(fa.references, fa.lengths, strict=True))

    def per_contig() -> Iterator[tuple[str, np.ndarray]]:
        with pysam.FastaFile(str(reference)) as fa:
            for contig in sorted(contigs, key=list(lengths).index):
                pred = predict_contig(pred_fn, fa.fetch(contig).upper(), window, bin_size,
                                      pred_fn.batch_size)
                log.info("predicted %s (%d bins)", contig, len(pred))
                yield contig, unclip(pred, prep.get("soft_clip"))

    outdir.mkdir(parents=True, exist_ok=True)
    paths = {t: outdir / f"{t}.bw" for t in pred_fn.tracks}
    write_bigwigs(paths, lengths, per_contig(), bin_size)
    return [str(p) for p in paths.values()]


def vep_metrics(rows: list[dict], truth: dict[tuple, str], effects: dict[tuple, float]
                ) -> dict:
    """Variant-effect metrics of scored rows against a truth table's classes and effects.

    ``vep_auroc``: AUROC of ``|score|`` for SNVs of a class with an effect (``EFFECT_CLASSES``:
    motif breaking, motif creating, flank GC) against ``neutral`` SNVs; ``vep_spearman``:
    Spearman correlation of the signed ``score`` with the signed true ``effect`` over every
    scored SNV that has one (neutral ones included); null where undefined (one class only,
    fewer than 3 effects, an older table without ``effect``). Counts give what each is over.
    """
    idx, labels = truth_labels(rows, truth)
    value = (auroc(np.abs([rows[i]["score"] for i in idx]), labels)
             if labels.any() and not labels.all() else None)
    eidx, eff = truth_effects(rows, effects)
    rho = spearman(np.array([rows[i]["score"] for i in eidx]), eff) if len(eidx) else None
    classes = [truth[(rows[i]["contig"], rows[i]["pos"], rows[i]["ref"], rows[i]["alt"])]
               for i in idx]
    return {
        "vep_auroc": None if value is None or not np.isfinite(value) else float(value),
        "vep_spearman": None if rho is None or not np.isfinite(rho) else rho,
        "vep_basis": f"AUROC: |score|, {' + '.join(EFFECT_CLASSES)} vs {NEGATIVE_CLASS} SNVs; "
                     "Spearman: signed score vs signed true effect, scored SNVs with an effect",
        "vep_n_effect": int(labels.sum()), "vep_n_neutral": int((~labels).sum()),
        "vep_n_motif_breaking": classes.count("motif_breaking"),
        "vep_n_spearman": int(len(eidx)),
    }


def infer_genomics(bundle: str | Path, reference: str | Path, windows: str | Path,
                   vcfs: dict[str, str], *, bigwig_dir: str | Path, pearson_tsv: str | Path,
                   variants_tsv: str | Path, cohort_json: str | Path, track_png: str | Path,
                   pearson_png: str | Path, genome_wide: bool = False, variant_bins: int = 8,
                   truth: str | Path | None = None, batch_size: int = 16, device: str = "auto",
                   subjects: list[str] | None = None) -> dict:
    """Predicted tracks, test metrics, variant scores, cohort JSON and report plots.

    Parameters
    ----------
    bundle
        Genomics model bundle folder.
    reference, windows
        The cohort's FASTA and windows HDF5 (its test split gives the evaluation windows and
        the contigs predicted unless ``genome_wide``).
    vcfs
        Subject -> VCF; every variant in them is scored.
    bigwig_dir, pearson_tsv, variants_tsv, cohort_json, track_png, pearson_png
        Outputs: a folder with ``<track>.bw``; per-track R table; variant scores; the cohort
        summary; the observed vs predicted plot; the per-track R distribution.
    genome_wide
        Predict every reference contig, not only the test contigs.
    variant_bins
        Bins around each variant summed into its score.
    truth
        Variant truth TSV (the demo's); gives ``vep_auroc`` and, with an ``effect`` column,
        ``vep_spearman`` (see :func:`vep_metrics`), else they are null.
    subjects
        The cohort's genomics subjects (for ``n_subjects``; default the windows' tracks).

    Returns
    -------
    dict
        The cohort JSON content.
    """
    pred_fn = Predictor(bundle, device, batch_size)
    wmeta = read_meta(windows)
    check_compatible(pred_fn.prep, wmeta, bundle, windows)
    rows, region, test_warnings = evaluate_test_windows(pred_fn, windows, wmeta)
    warnings = cohort_warnings(wmeta, pred_fn.meta, test_warnings)
    write_tsv(pearson_tsv, rows, ["track", "compared_with", "pearson", "pearson_log1p", "n_bins"])
    raw = np.array([r["pearson"] for r in rows], dtype=float)
    logp = np.array([r["pearson_log1p"] for r in rows], dtype=float)
    with h5py.File(windows, "r") as h5:
        names = list(wmeta["contigs"])
        test_contigs = sorted({names[i] for i in h5["contig"][h5["split"][()] == 2]},
                              key=names.index)
    contigs = names if genome_wide else test_contigs
    if not contigs:
        log.warning("no test contigs and genome_wide is off: no predicted tracks written")
    write_tracks(pred_fn, reference, contigs, Path(bigwig_dir))
    variants = read_variants(vcfs)
    scored, per_track = score_variants(pred_fn, reference, variants, int(pred_fn.prep["window"]),
                                       int(pred_fn.prep["bin_size"]), variant_bins, batch_size)
    truth_map, effect_map = read_truth_table(truth) if truth else ({}, {})
    for i, r in enumerate(scored):
        key = (r["contig"], r["pos"], r["ref"], r["alt"])
        r["truth"] = truth_map.get(key, "")
        r["truth_effect"] = effect_map.get(key)
        r["n_carriers"] = len(r["carriers"])
        r["carriers"] = ",".join(r["carriers"])
        for k, t in enumerate(pred_fn.tracks):
            r[f"score_{t}"] = float(per_track[i, k]) if per_track.shape[1] else None
    cols = ["contig", "pos", "id", "ref", "alt", "n_carriers", "status", "score", "truth",
            "truth_effect", *[f"score_{t}" for t in pred_fn.tracks], "carriers"]
    write_tsv(variants_tsv, scored, cols)
    vep = vep_metrics(scored, truth_map, effect_map) if truth else vep_metrics([], {}, {})
    if region is not None:
        show = list(range(min(3, len(wmeta["tracks"]))))
        plot_tracks(track_png, region["region"], region["observed"][:, show],
                    region["predicted"][:, show], [wmeta["tracks"][k] for k in show],
                    int(wmeta["bin_size"]), region["start"])
    else:
        plot_message(track_png, "no test windows")
    if np.isfinite(raw).any() or np.isfinite(logp).any():
        plot_pearson(pearson_png, raw, logp)
    else:
        plot_message(pearson_png, "no test Pearson R: see the warnings" if rows
                     else "no test windows")
    summary = {
        "n_subjects": len(subjects) if subjects is not None else len(wmeta["tracks"]),
        "n_tracks": len(rows), "bundle": str(bundle),
        "test_contigs": test_contigs,
        "test_pearson_mean": _mean(raw),
        "test_pearson_log1p_mean": _mean(logp),
        "pearson_basis": "normalised, soft-clipped coverage per bin on test windows",
        **vep,
        "n_variants": len(scored), "n_variants_scored": sum(r["status"] == "ok" for r in scored),
        "genome_wide": genome_wide,
        "test_pearson": {r["track"]: r["pearson"] for r in rows},
        "warnings": warnings,
    }
    write_json(cohort_json, summary)
    log.info("test Pearson %.3f (log1p %.3f), VEP AUROC %s, Spearman %s over %d variants",
             summary["test_pearson_mean"] or float("nan"),
             summary["test_pearson_log1p_mean"] or float("nan"),
             "n/a" if vep["vep_auroc"] is None else f"{vep['vep_auroc']:.3f}",
             "n/a" if vep["vep_spearman"] is None else f"{vep['vep_spearman']:.3f}", len(scored))
    for message in warnings:
        log.warning("%s", message)
    return summary

