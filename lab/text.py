"""Every word the app shows, in one place: titles, labels, choices, notices, the About page."""

from __future__ import annotations

TITLE = "DETR Inversion Lab"
INTRO = ("# DETR Inversion Lab\nWhat does a Detection Transformer keep of an image? "
         "Reconstruct it from every stage and layer of DETR.")

MASK_CHOICES = [("GrabCut inside its box", "grabcut"), ("its whole box", "box"), ("the whole image", "image")]
PERTURBATION_CHOICES = [
    ("hue to red", "red"), ("hue to green", "green"), ("hue to blue", "blue"), ("rotate hue 120°", "rotate120"),
    ("rotate hue 240°", "rotate240"), ("grey", "grey"), ("free hue (slider)", "hue"),
]
ENTRY_CHOICES = [("as the backbone map", "backbone"), ("as the final encoder output", "encoder")]

LINK_INFO = ("Opens the app with the same model, tab, example and settings "
             "(uploaded images are not part of links).")
NO_IMAGE = "Upload an image, take one with the webcam, or click an example first."
BAD_OBJECT = "Choose an object from the list (got {value!r})."


def unavailable(label: str, why: str) -> str:
    return f"**{label}** is not available here: {why}"


def no_inverters(label: str) -> str:
    return (f"**{label}** has no trained inverters yet: stage reconstructions are optimisation-based (slower), "
            "and the layer swap and colour perturbation need trained inverters.")


def no_detection(threshold: float) -> str:
    return f"No object detected (score threshold {threshold:g}): the reconstructions show what DETR kept anyway."


def detections_found(found: list) -> str:
    return f"{len(found)} detected: " + ", ".join(f"{d.label} {d.score:.2f}" for d in found) + "."


def tradeoff_summary(arch: str, result) -> str:
    stopped = ("" if result.steps >= result.planned_steps
               else f" (stopped after {result.steps} of {result.planned_steps} steps: the machine is busy)")
    return (f"**{arch}, latent {result.latent}, λ = {result.lam:g}**: test accuracy {result.accuracy:.1%}, "
            f"reconstruction MSE {result.mse:.4f}, trained in {result.seconds:.1f} s{stopped}.")


ABOUT = """
### What you are looking at
DETR runs once on your image. The representation after its **backbone**, after every **encoder** and
**decoder** layer, and its **predictions** (a class and a box per query) are captured and turned back into
images by small inverse networks, one per DETR module, each trained to undo its module while the detector
stays frozen (the *modular* training of the paper). A reconstruction from a deep stage chains the inverses
down to pixels. What survives shows what DETR keeps: shapes and layout survive every stage, colour and
detail fade with depth and drift toward the typical colour of the detected class, and objects the detector
ignores vanish.

- **Stage reconstructions**: the image from each stage (optionally from every layer), with PSNR and SSIM to the input.
- **Layer swap**: a layer fed to an inverse trained for another layer. Neighbouring layers reconstruct well, distant
  ones less so: the residual stream changes gradually. The heat map is the linear CKA between layers.
- **Colour perturbation**: recolour one object and see whether DETR's detections and its reconstructions keep the
  new colour or revert to the class's prototype.

The **Shapes world** (a tiny DETR trained on synthetic shapes whose classes have typical colours: circle red,
square green, triangle blue, star yellow) runs offline; **DETR-R50** is `facebook/detr-resnet-50` from the
Hugging Face Hub. Links restore the model, tab, example and settings of a result.

### Links
[Paper (arXiv:2412.06534)](https://arxiv.org/abs/2412.06534) ·
[the authors' code](https://github.com/wiskott-lab/inverse-tvm) ·
[DETR](https://github.com/facebookresearch/detr)

### Citation
```bibtex
@article{rathjens2024inverting,
  title   = {Inverting Visual Representations with Detection Transformers},
  author  = {Rathjens, Jan and Reyhanian, Shirin and Kappel, David and Wiskott, Laurenz},
  journal = {arXiv preprint arXiv:2412.06534},
  year    = {2024}
}
```
"""


TRADEOFF_ABOUT = """\
**Classification vs reconstruction in one latent** (Rathjens & Wiskott, arXiv:2401.09237).
A small network encodes a digit into a few numbers (the latent); a classifier reads the class from
them and a decoder redraws the digit from them. The encoder is trained on
λ · reconstruction MSE + (1 − λ) · cross-entropy; the decoder learns only from the MSE and the
classifier only from the cross-entropy, so at every λ the decoder shows what the latent still
holds of the image.

A detector such as DETR is the λ = 0 end: trained for its task alone, with nothing asking it to
keep the image. The inversion tabs train decoders on its frozen features after the fact, exactly
like this decoder at λ = 0, and show what survives. Moving λ toward 1 buys back image detail at
the price of accuracy; a wider latent or a bigger network makes the price smaller.
"""


def method_picture() -> str:
    """The forward stages and their inverses as a small HTML diagram."""
    stages = ["image", "backbone", "encoder", "decoder", "prediction"]
    box = "padding:6px 12px;border:1px solid #888;border-radius:6px;background:{};"
    forward = " → ".join(f'<span style="{box.format("#e8f0fe")}">{stage}</span>' for stage in stages)
    inverse = " ← ".join(f'<span style="{box.format("#fdecea")}">{stage}</span>' for stage in stages)
    return (f'<div style="line-height:2.6;font-family:sans-serif;color:#222">DETR: {forward}<br>'
            f"inverses: {inverse}<br><small>each ← is a trained inverse module; chained, they map any stage back "
            "to pixels</small></div>")
