"""The synthesis training task: a 3D pix2pix (conditional GAN) for :func:`voxseq.fit.fit`.

The generator is the model :func:`~voxseq.fit.fit` optimises (a :class:`~voxseq.models.unet.
UNet3D` from the available channels to the missing one, one output channel). The discriminator
(MONAI's :class:`~monai.networks.nets.PatchDiscriminator`, which sees the input channels and the
real or synthesised channel together) and its optimizer live in :class:`SynthesisTask`: each
call of :meth:`SynthesisTask.loss` first takes one discriminator step on the batch, then returns
the generator's loss, ``l1_weight * L1 + adv_weight * adversarial`` (MONAI's
:class:`~monai.losses.PatchAdversarialLoss`, least squares or BCE), for ``fit`` to step.
``adv_weight`` 0 trains the same generator with L1 alone (the discriminator is then not used).

The task's state (discriminator weights, its optimizer and gradient scaler) goes through
``state_dict`` / ``load_state_dict``, which ``fit`` saves in ``last.pt`` and restores on resume.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import PatchAdversarialLoss
from monai.networks.nets import PatchDiscriminator
from torch import nn

from voxseq.imaging.patches import PatchSampler, read_patch
from voxseq.imaging.sliding import sliding_window_logits
from voxseq.imaging.store import open_store
from voxseq.synthesis.metrics import body_mask, magnitude, score_volume

log = logging.getLogger(__name__)


def build_discriminator(in_channels: int, channels: int = 16, layers: int = 3) -> nn.Module:
    """PatchGAN discriminator over (input channels + the real or synthesised one), instance
    norm (batches are small); outputs one logit per receptive field."""
    return PatchDiscriminator(
        spatial_dims=3,
        channels=channels,
        in_channels=in_channels + 1,
        out_channels=1,
        num_layers_d=layers,
        norm="INSTANCE",
    )


def synthesise(
    model: nn.Module, inputs: np.ndarray, patch: Sequence[int], infer: dict, device
) -> np.ndarray:
    """The synthesised channel of a whole volume by Gaussian sliding window.

    Parameters
    ----------
    inputs : (C_in, X, Y, Z) normalised input channels
    infer : ``overlap``, ``batch_size``, ``sigma_scale`` (as ``imaging.infer``)

    Returns
    -------
    (X, Y, Z) float32, in the target channel's normalised units.
    """
    with torch.no_grad():
        out = sliding_window_logits(
            model,
            inputs,
            patch,
            1,
            overlap=infer.get("overlap", 0.5),
            batch_size=infer.get("batch_size", 4),
            device=device,
            sigma_scale=infer.get("sigma_scale", 0.125),
        )
    return out[0].numpy()


def score_channels(
    synthetic: np.ndarray,
    real: np.ndarray,
    reference: np.ndarray,
    label: np.ndarray | None,
    lesion_labels: Sequence[int] | None,
) -> dict[str, float]:
    """BraSyn scores of a synthesised channel in normalised units (:func:`score_volume` after
    :func:`magnitude`), the body taken from ``reference`` (the first input channel), the lesion
    from ``label`` (``lesion_labels``; None: every nonzero label)."""
    body = body_mask(reference)
    lesion = None
    if label is not None:
        lesion = np.isin(label, lesion_labels) if lesion_labels else label > 0
    return score_volume(magnitude(synthetic, body), magnitude(real, body), body, lesion)


class SynthesisTask:
    """The synthesis :class:`voxseq.fit.Task` (see the module docstring).

    Parameters
    ----------
    train_stores, val_stores
        Zarr stores of complete subjects (every channel present).
    inputs, target
        Channel indices in the stores: the generator's inputs, the channel it synthesises.
    centres
        Per training store, foreground positions (``read_centres``) for ``fg_fraction`` of the
        patches; None: uniform patches only.
    gan
        ``adv_weight`` (0: L1 only), ``l1_weight`` (100), ``criterion`` (``least_squares`` or
        ``bce``), ``d_lr`` (2e-4), ``d_channels`` (16), ``d_layers`` (3).
    fp16_scaler
        Scale the discriminator's loss (training under float16 autocast on CUDA, as ``fit``'s
        own scaler does for the generator).
    """

    def __init__(
        self,
        train_stores: Sequence[str],
        val_stores: Sequence[str],
        inputs: Sequence[int],
        target: int,
        patch: Sequence[int],
        batch_size: int,
        seed: int,
        gan: dict,
        infer: dict,
        centres: Sequence[np.ndarray] | None = None,
        fg_fraction: float = 0.33,
        lesion_labels: Sequence[int] | None = None,
        fp16_scaler: bool = False,
    ):
        self.stores = [open_store(p) for p in train_stores]
        self.val = [open_store(p) for p in val_stores]
        self.inputs, self.target = list(inputs), int(target)
        self.patch, self.batch_size, self.infer = tuple(patch), batch_size, dict(infer)
        self.lesion_labels = lesion_labels
        cent = centres or [np.zeros((0, 4), np.int64)] * len(self.stores)
        self.sampler = PatchSampler(
            [st.shape for st in self.stores], cent, patch, fg_fraction, seed, {"flip": True}
        )
        self.adv_weight = float(gan.get("adv_weight", 1.0))
        self.l1_weight = float(gan.get("l1_weight", 100.0))
        self.disc = build_discriminator(
            len(self.inputs), gan.get("d_channels", 16), gan.get("d_layers", 3)
        )
        self.adv = PatchAdversarialLoss(criterion=gan.get("criterion", "least_squares"))
        self.d_opt = torch.optim.Adam(
            self.disc.parameters(), lr=gan.get("d_lr", 2e-4), betas=(0.5, 0.999)
        )
        self.d_scaler = torch.amp.GradScaler("cuda", enabled=fp16_scaler)

    # ---- state (saved by fit in last.pt) ------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "discriminator": self.disc.state_dict(),
            "optimizer": self.d_opt.state_dict(),
            "scaler": self.d_scaler.state_dict(),
        }

    def load_state_dict(self, d: dict) -> None:
        self.disc.load_state_dict(d["discriminator"])
        self.d_opt.load_state_dict(d["optimizer"])
        if d.get("scaler"):
            self.d_scaler.load_state_dict(d["scaler"])

    # ---- data ---------------------------------------------------------------------------------
    def batches(self, epoch: int, n: int, rank: int = 0, world: int = 1):
        """The epoch's ``n`` batches of {"x": (B, C_in, *patch), "y": (B, 1, *patch)}, a pure
        function of (seed, epoch); rank ``rank`` takes items ``rank, rank + world, ...``."""
        specs = self.sampler.epoch(epoch, n * self.batch_size)
        for b in range(n):
            items = specs[b * self.batch_size : (b + 1) * self.batch_size][rank::world]
            xs, ys = [], []
            for sp in items:
                block = read_patch(self.stores[sp.subject].image, sp.start, self.patch)
                block = block[None] if block.ndim == 3 else block
                flip = [axis + 1 for axis, f in enumerate(sp.flips) if f]
                block = np.flip(block, flip) if flip else block
                xs.append(block[self.inputs])
                ys.append(block[[self.target]])
            yield {
                "x": torch.from_numpy(np.ascontiguousarray(np.stack(xs), np.float32)),
                "y": torch.from_numpy(np.ascontiguousarray(np.stack(ys), np.float32)),
            }

    # ---- objective ----------------------------------------------------------------------------
    def _to(self, device: torch.device) -> None:
        """Move the discriminator and its optimizer state to ``device`` (once)."""
        if next(self.disc.parameters()).device == device:
            return
        self.disc.to(device)
        for state in self.d_opt.state.values():
            for k, v in state.items():
                if torch.is_tensor(v) and k != "step":
                    state[k] = v.to(device)

    def _discriminator_step(self, x: torch.Tensor, y: torch.Tensor, fake: torch.Tensor) -> None:
        self.d_opt.zero_grad(set_to_none=True)
        real_out = self.disc(torch.cat([x, y], 1))[-1]
        fake_out = self.disc(torch.cat([x, fake.detach()], 1))[-1]
        d_loss = 0.5 * (
            self.adv(real_out.float(), target_is_real=True, for_discriminator=True)
            + self.adv(fake_out.float(), target_is_real=False, for_discriminator=True)
        )
        self.d_scaler.scale(d_loss).backward()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world = torch.distributed.get_world_size()
            for p in self.disc.parameters():
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad)
                    p.grad /= world
        self.d_scaler.step(self.d_opt)
        self.d_scaler.update()

    def loss(self, model: nn.Module, batch: dict, device: torch.device) -> torch.Tensor:
        """One discriminator step, then the generator's loss (L1 + adversarial)."""
        x, y = batch["x"].to(device), batch["y"].to(device)
        fake = model(x)
        l1 = F.l1_loss(fake.float(), y)
        if self.adv_weight == 0:
            return self.l1_weight * l1
        self._to(device)
        self._discriminator_step(x, y, fake)
        self.disc.requires_grad_(False)  # the generator's step leaves the discriminator alone
        try:
            fake_out = self.disc(torch.cat([x, fake], 1))[-1]
            adv = self.adv(fake_out.float(), target_is_real=True, for_discriminator=False)
        finally:
            self.disc.requires_grad_(True)
        return self.l1_weight * l1 + self.adv_weight * adv

    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """``val_loss``: L1 in the body (normalised units); ``score``: mean BraSyn SSIM in the
        body; ``val_psnr``."""
        losses, ssims, psnrs = [], [], []
        for st in self.val:
            vol = st.read_image()
            synth = synthesise(model, vol[self.inputs], self.patch, self.infer, device)
            label = np.asarray(st.label[...]) if st.label is not None else None
            s = score_channels(
                synth, vol[self.target], vol[self.inputs[0]], label, self.lesion_labels
            )
            body = body_mask(vol[self.inputs[0]])
            losses.append(float(np.abs(synth - vol[self.target])[body].mean()))
            ssims.append(s["ssim_body"])
            psnrs.append(s["psnr"])
        return {
            "val_loss": float(np.mean(losses)),
            "score": float(np.mean(ssims)),
            "val_psnr": float(np.mean(psnrs)),
        }
