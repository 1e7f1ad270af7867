"""Optimisation-based inversion (Mahendran and Vedaldi 2015, with Lucid-style image parameterisations).

No trained inverter is needed: images are optimised until DETR's representation of them matches
the target, every requested source and image in one batch. Pieces that compose, one job each:

    parameterisations.py  what is optimised: pixels, a 1/f Fourier spectrum, a Laplacian pyramid
    transforms.py         random jitter before the forward
    objectives.py         relative feature error, total variation, range and neutral-colour priors
    forward.py            the detector's forward, cut short for images that target the backbone
    loop.py               optimise_inversions: all sources in one batch, a fixed step budget
    lbfgs.py              L-BFGS with its own curvature, step length and line search for each image
    cost.py               FLOPs of a request and the GPU seconds to ask ZeroGPU for (an estimate)

The comparison with learned inverters is `inversion.experiments.optimised_vs_learned`.
"""

from .loop import OptimisationConfig, OptimisedInversions, optimise_inversions

__all__ = ["OptimisationConfig", "OptimisedInversions", "optimise_inversions"]
