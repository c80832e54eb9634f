"""Child process of the synthesis resume test: trains the GAN task through ``fit``.

Arguments: stores folder, workdir, mode (``pause``: sleep at the start of the second epoch so
the parent can kill the run after the first epoch's checkpoint; ``run``: train to the end).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthesis_fixture import tiny_cfg  # noqa: E402

from voxseq.fit import TrainConfig, fit, seed_everything  # noqa: E402
from voxseq.models import build_model  # noqa: E402
from voxseq.synthesis.gan import SynthesisTask  # noqa: E402


class PausingTask(SynthesisTask):
    def batches(self, epoch, n, rank=0, world=1):
        if epoch >= 1:
            time.sleep(60)  # killed here, after epoch 0's last.pt
        return super().batches(epoch, n, rank, world)


def main(folder: str, workdir: str, mode: str) -> None:
    torch.set_num_threads(1)
    cfg = tiny_cfg(epochs=3, iters=2)
    tcfg = TrainConfig.from_dict(cfg["train"], 0)
    seed_everything(0)
    model = build_model("unet3d", in_channels=1, out_channels=1, **cfg["model"])
    stores = sorted(str(p) for p in Path(folder).glob("*.zarr"))
    cls = PausingTask if mode == "pause" else SynthesisTask
    task = cls(stores[:3], stores[3:4], [0], 1, cfg["patch_size"], 2, 0, cfg["gan"], cfg["infer"])
    fit(task, model, tcfg, workdir, Path(workdir) / "history.tsv", "digest")


if __name__ == "__main__":
    main(*sys.argv[1:])
