"""The sequence-to-coverage architectures ``genomics.model`` may name, and their arguments.

``genomics.model.arch`` names the architecture that trains; ``genomics.model.compare`` lists
several, each trained as its own job (the best on validation becomes the cohort's bundle). The
registry (:mod:`voxseq.models`) builds them by the same names; bundles written before
``arch`` existed carry ``seqcnn``, the dilated CNN's registry alias. No torch import here: the
workflow reads this while it builds the DAG.
"""

from __future__ import annotations

from voxseq import VoxseqError

GENOMICS_ARCHS = ("dilated_cnn", "cnn_bilstm")
DEFAULT_ARCH = "dilated_cnn"
# genomics.model keys each architecture takes (channels, stem_kernel and dropout are shared);
# arch and compare choose what trains, they are no architecture's argument
ARCH_KEYS = {"dilated_cnn": ("channels", "dilated_layers", "stem_kernel", "dropout"),
             "cnn_bilstm": ("channels", "stem_kernel", "lstm_hidden", "lstm_layers", "dropout")}
CHOICE_KEYS = ("arch", "compare")


def _check(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in GENOMICS_ARCHS]
    if unknown:
        raise VoxseqError(f"config genomics.model: unknown architecture(s) {unknown}; known: "
                          f"{list(GENOMICS_ARCHS)}")
    return names


def genomics_archs(model_cfg: dict) -> list[str]:
    """The architectures a ``genomics.model`` block trains: ``compare`` (in order, each once)
    when it lists any, else ``arch`` (default ``dilated_cnn``).

    Raises
    ------
    VoxseqError
        For a name that is no sequence-to-coverage architecture.
    """
    names = model_cfg.get("compare") or [model_cfg.get("arch") or DEFAULT_ARCH]
    return _check(list(dict.fromkeys(names)))


def arch_arguments(arch: str, model_cfg: dict) -> dict:
    """``arch``'s keyword arguments from a ``genomics.model`` block: its own keys and any key
    no architecture claims (so a misspelt one still fails in the constructor); ``arch``,
    ``compare`` and the other architectures' keys are left out."""
    _check([arch])
    others = set(CHOICE_KEYS).union(*ARCH_KEYS.values()) - set(ARCH_KEYS[arch])
    return {k: v for k, v in model_cfg.items() if k not in others}
