"""Which inverse module makes a chain lose: one stack's modules swapped, one at a time, for another's.

A stage's reconstruction runs through every inverse module from that stage down to pixels. When a longer-trained
stack reconstructs a stage worse than a shorter one (the headroom study's M-40000-feature from the prediction),
swapping each module of the chain for the other stack's says whether the entry module or the chain beneath it is
to blame.

    python -m inversion.shapes chain-swap checkpoints/shapes/inverters runs/headroom/M-10000-feature --stage prediction
"""

from __future__ import annotations

import copy

import torch

from ..core.checkpoints import load_inverters
from ..core.inverters import InverterStack
from ..core.metrics import image_quality
from ..core.reconstruct import reconstruct
from ..core.registry import find_spec, load_detector
from ..core.stages import STAGES, Source
from .architectures import heldout_images


def chain(stage: str) -> tuple[str, ...]:
    """The inverse modules a stage's reconstruction runs through, from its own down to the inverse backbone."""
    return tuple(reversed(STAGES[: STAGES.index(stage) + 1]))


def swapped(stack: InverterStack, other: InverterStack, module: str) -> InverterStack:
    """A copy of `stack` with one inverse module taken from `other`."""
    hybrid = copy.deepcopy(stack)
    setattr(hybrid, module, copy.deepcopy(other.module(module)))
    return hybrid


def chain_swap(base: str, other: str, stage: str, images: int = 200, batch_size: int = 50) -> dict[str, float]:
    """PSNR (dB) of `stage`'s reconstruction of the first held-out Shapes images by the `base` stack, by the `other`,
    and by the base with each module of the chain taken from the other (the Shapes DETR's stacks, as folders)."""
    detector = load_detector(find_spec("shapes"))
    stacks = {name: load_inverters(folder, detector)[0] for name, folder in (("base", base), ("other", other))}
    pictures = heldout_images(images)
    with torch.no_grad():
        captured = [detector.capture(pictures[start:start + batch_size]) for start in range(0, images, batch_size)]
        originals = torch.cat([representations.pixels for representations in captured])

        def psnr(stack: InverterStack) -> float:
            rebuilt = [torch.stack(reconstruct(stack, representations, [Source(stage)])[Source(stage)])
                       for representations in captured]
            return image_quality(torch.cat(rebuilt), originals)["psnr"]

        variants = {**stacks, **{f"base, the other's inverse {module}": swapped(stacks["base"], stacks["other"], module)
                                 for module in chain(stage)}}
        return {name: psnr(stack) for name, stack in variants.items()}
