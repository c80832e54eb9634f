"""Rule genomics_interpret: attributions of the highest-signal test windows, motifs discovered
from them, their recovery of the demo's planted motifs, and the report's logos.

Attributions (voxseq.genomics.attribution) are computed on whole windows; motif discovery
(voxseq.genomics.motifs) sees each window's central span (the bins the scalar sums, widened by
``pad`` bp each side), so that a site shared by overlapping windows is counted about once.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pysam

from voxseq import VoxseqError
from voxseq.bundle import load_bundle
from voxseq.fit import resolve_device
from voxseq.genomics.attribution import attribute_windows, read_attributions, write_attributions
from voxseq.genomics.infer import check_compatible
from voxseq.genomics.logos import plot_attribution_logos, plot_motif_logos
from voxseq.genomics.motifs import discover_motifs, match_planted, write_meme
from voxseq.genomics.sequence import as_bytes, one_hot
from voxseq.genomics.windows import read_meta, split_indices
from voxseq.io.atomic import write_json

log = logging.getLogger(__name__)

BLOCK = 1 << 22  # bp of a contig counted at a time for the background


def planted_motifs(demo: bool) -> list[tuple[str, str]]:
    """The demo genome's planted motifs ``(name, core)`` when ``demo``, else none."""
    if not demo:
        return []
    from voxseq.demo.genomics import GenomicsDemoConfig

    return [(name, core) for name, core, _ in GenomicsDemoConfig().motifs]


def background(reference: str | Path, contigs: list[str]) -> np.ndarray:
    """A, C, G, T frequencies of ``contigs`` of the reference (N and other codes skipped)."""
    counts = np.zeros(4)
    with pysam.FastaFile(str(reference)) as fa:
        for c in dict.fromkeys(contigs):
            n = fa.get_reference_length(c)
            for s in range(0, n, BLOCK):
                counts += one_hot(fa.fetch(c, s, min(s + BLOCK, n))).sum(0)
    if counts.sum() == 0:
        raise VoxseqError(f"reference {reference}: no A/C/G/T in contigs {contigs}")
    return counts / counts.sum()


def check_reference(reference: str | Path, windows: str | Path, contigs: list[str],
                    starts: np.ndarray, onehot: np.ndarray) -> None:
    """Each attributed window's sequence must be the reference's at its coordinates."""
    with pysam.FastaFile(str(reference)) as fa:
        for c, s, oh in zip(contigs, starts, onehot, strict=True):
            ref = one_hot(as_bytes(fa.fetch(c, int(s), int(s) + len(oh)).upper()))
            if ref.shape != oh.shape or not np.array_equal(ref, oh):
                raise VoxseqError(f"windows file {windows}: window {c}:{s + 1}-{s + len(oh)} "
                                  f"differs from the reference {reference}; re-tile with it")


def interpret_genomics(bundle: str | Path, windows: str | Path, reference: str | Path, *,
                       attributions_h5: str | Path, meme: str | Path, motifs_json: str | Path,
                       motif_png: str | Path, attribution_png: str | Path,
                       planted: list[tuple[str, str]] | None = None, n_windows: int = 64,
                       center_bins: int | None = None, pad: int = 32, n_ism: int = 4,
                       ism_width: int = 40, batch_size: int = 16, device: str = "auto",
                       modisco: dict | None = None) -> dict:
    """Attributions, ISM, motifs (MEME), planted-motif recovery (JSON) and two logo figures.

    Parameters
    ----------
    bundle, windows, reference
        Genomics model bundle folder, the cohort's windows HDF5 and reference FASTA.
    planted
        Known motifs ``(name, core)`` to look for (the demo's); none: no recovery is reported.
    n_windows, center_bins, n_ism, ism_width
        See :func:`voxseq.genomics.attribution.attribute_windows`.
    pad
        bp each side of the central span that motif discovery also sees.
    modisco
        Keyword arguments of :func:`voxseq.genomics.motifs.discover_motifs`.

    Returns
    -------
    dict
        The motifs JSON: ``motifs`` (name, consensus, width, seqlets), ``planted`` (one row per
        planted motif, :func:`match_planted`), ``motifs_found``, ``motifs_planted``,
        ``motifs_recovered`` (null without planted motifs), ``attributed_windows``, ``seconds``.
    """
    t0 = time.perf_counter()
    model, meta = load_bundle(bundle, "genomics")
    wmeta = read_meta(windows)
    check_compatible(meta["preprocessing"], wmeta, bundle, windows)
    dev = resolve_device(device)
    model.to(dev)
    # the test contigs' windows; without any (test_contigs: []), the validation contigs'
    split = next((s for s in ("test", "val") if len(split_indices(windows, s))), "test")
    if split != "test":
        log.warning("windows file %s has no test window: attributions and motifs come from the "
                    "validation contigs' windows instead", windows)
    attr = attribute_windows(model, windows, n_windows, center_bins, n_ism, ism_width,
                             batch_size=batch_size, device=dev, split=split)
    check_reference(reference, windows, attr.contig, attr.start, attr.onehot)
    write_attributions(attributions_h5, attr, True, bundle, list(meta["preprocessing"]["tracks"]))
    t1 = time.perf_counter()
    log.info("attributions of %d windows, ISM of %d: %.1f s", len(attr.index), len(attr.ism),
             t1 - t0)
    c0, c1 = attr.center_bp
    c0, c1 = max(c0 - pad, 0), min(c1 + pad, attr.onehot.shape[1])
    motifs = discover_motifs(attr.onehot[:, c0:c1], attr.hypothetical[:, c0:c1],
                             **(modisco or {}))
    bg = background(reference, attr.contig)
    write_meme(meme, motifs, bg)
    matches = match_planted(motifs, planted or [])
    log.info("motif discovery: %d motifs, %.1f s", len(motifs), time.perf_counter() - t1)
    for r in matches:
        log.info("planted %s %s: best %s %s (Hamming %d)%s", r["planted"], r["core"], r["motif"],
                 r["consensus"], r["distance"], "" if r["recovered"] else "  NOT RECOVERED")
    plot_motif_logos(motif_png, motifs, matches)
    plot_attribution_logos(attribution_png, read_attributions(attributions_h5))
    out = {
        "motifs": [{"name": m.name, "consensus": m.consensus, "width": len(m.ppm),
                    "seqlets": m.n_sites} for m in motifs],
        "planted": matches,
        "motifs_found": len(motifs),
        "motifs_planted": len(matches),
        "motifs_recovered": sum(r["recovered"] for r in matches) if matches else None,
        "attributed_split": split,
        "attributed_windows": len(attr.index),
        "ism_windows": len(attr.ism),
        "background": [round(float(v), 4) for v in bg],
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_json(motifs_json, out)
    return out
