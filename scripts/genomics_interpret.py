"""Rule genomics_interpret: attributions + ISM of the top test windows, motifs (MEME), planted
motif recovery (JSON), logo figures."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # the voxseq package

from voxseq.genomics.interpret import interpret_genomics, planted_motifs  # noqa: E402
from voxseq.scripting import rule_logging  # noqa: E402

with rule_logging(snakemake):
    p, out = snakemake.params, snakemake.output
    interpret_genomics(
        Path(snakemake.input.bundle[0]).parent,
        snakemake.input.windows,
        snakemake.input.fasta,
        attributions_h5=out.attributions,
        meme=out.meme,
        motifs_json=out.motifs,
        motif_png=out.motif_logos,
        attribution_png=out.attribution_logos,
        planted=planted_motifs(p.demo),
        n_windows=p.n_windows,
        center_bins=p.center_bins,
        n_ism=p.n_ism,
        ism_width=p.ism_width,
        batch_size=p.batch_size,
        device=p.device,
        modisco=p.modisco,
    )
