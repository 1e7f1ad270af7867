"""Every word the app shows, in one place: titles, labels, choices, notices, summaries, the About pages.

The tab modules only wire components; they take their words from here, section by section.
"""

from __future__ import annotations

# ---------------------------------------------------------------- the page

TITLE = "DETR Inversion Lab"
INTRO = ("# DETR Inversion Lab\nWhat does a Detection Transformer keep of an image? "
         "Reconstruct it from every stage and layer of DETR.")
MODEL = "Model"
LINK = "Link to this result"
LINK_INFO = ("Opens the app with the same model, tab, example, settings and view, for good "
             "(uploaded images are not part of it: share those with the button below).")
QR = "QR code of the link"
DEEP_LINK = "Copy a link with your upload"
DEEP_LINK_COPIED = "Link copied"


CARD = "Result card for a slide (PNG and PDF)"
CARD_FILES = "Result card: 1920 x 1080 PNG and PDF, with the link and its QR code"
CARD_INPUT = "input and detections"
CARD_OPTIMISED = "optimised: "
DETECT_TOOL_TITLE = "What DETR detects in this image"  # the detect tool's card (lab.tools)
NO_RESULT_FOR_CARD = "There is no result in this tab yet: run it (or click an example) first, then make its card."
CARD_NOT_AN_IMAGE = ("A card is made of the pictures the tab shows, and one of the files sent for it is not an image "
                     "({why}): run the tab, then make its card from its result.")


def deep_link_info(cache_minutes: int) -> str:
    """The note beside the deep-link button: what it carries and for how long."""
    return (f"The button's link also carries your uploaded image and the result on screen, but only as long as the "
            f"Space keeps its session files: about {cache_minutes} minutes here, and never past a restart. "
            "The link above carries examples and settings for good.")


def _others(serving: list[str]) -> str:
    return " or ".join(f"**{label}**" for label in serving)


def hub_unreachable(label: str, serving: list[str]) -> str:
    """A Hub model whose weights could not be fetched: what is missing, what still works, what to do."""
    return (f"**{label}** is not available right now: its weights come from the Hugging Face Hub, which this server "
            f"cannot reach. Everything else works with {_others(serving)}: choose it above. Running the app yourself? "
            "Connect to the internet and start it again; the weights are downloaded once, then kept.")


def not_loaded(label: str, serving: list[str]) -> str:
    """A model that failed to load for another reason (its cause is in the log)."""
    return (f"**{label}** is not available on this server: it failed to load. Everything else works with "
            f"{_others(serving)}: choose it above. Running the app yourself? Its log says what went wrong.")


def inverters_not_loaded(label: str, classifier: bool = False) -> str:
    """A model served without the inverters it names (their cause is in the log); a classifier gets no
    reconstructions then (optimisation-based inversion is for detectors)."""
    works = ("its classes and attention maps as usual, no reconstructions" if classifier else
             "detections, attention maps and interventions as usual, reconstructions by optimisation (slower)")
    return (f"**{label}** works without its trained inverters, which failed to load: {works}. Running the app "
            "yourself? Its log says what went wrong.")


def no_inverters(label: str) -> str:
    return (f"**{label}** has no trained inverters yet: stage reconstructions are optimisation-based (slower); "
            "the layer swap shows the similarity map, the colour perturbation the detections before and after, and the "
            "attention tab its maps and interventions, without reconstructions.")


def notice(lines: list[str]) -> str:
    """The notice under the model choice: one warning per line."""
    return "\n\n".join(f"⚠️ {line}" for line in lines)


# ---------------------------------------------------------------- shared by the tabs

IMAGE = "Image"
NO_IMAGE = "Upload an image, take one with the webcam, or click an example first."
COMPARE = "Drag to compare (after a result)"


def stage_compared(caption: str) -> str:
    """The stage slider's label: what its two sides show, left | right."""
    return f"Drag: the input | its reconstruction from {caption.split(' · ')[0]}"


def perturbation_compared(caption: str) -> str:
    """The perturbation's reconstruction slider's label, left | right."""
    return f"Drag: reconstructions from {caption.split(' · ')[0]}, original | perturbed"


PERTURBED_COMPARED = "Drag: the original | the perturbed image"
RUNNING = "Running DETR and the inverters"


def example_label(image_name: str, model_name: str) -> str:
    """An example row's label: the image's name without its suffix, and the model it was chosen for."""
    return f"{image_name.rsplit('.', 1)[0]} · {model_name}"


def detection_label(index: int | None, detection) -> str:
    """'2: square 0.93' (numbered as in the object list), or 'square 0.93' when `index` is None."""
    named = f"{detection.label} {detection.score:.2f}"
    return named if index is None else f"{index}: {named}"


# ---------------------------------------------------------------- stage reconstructions

STAGES_TAB = "Stage reconstructions"
ALL_LAYERS = "Also every encoder and decoder layer"
OPTIMISED = "Also optimisation-based inversion (slow)"
OPTIMISED_INFO = ("The image found by L-BFGS on a Laplacian pyramid until DETR's representation of it matches, every "
                  "stage at once, no trained inverter: learned and optimised side by side (About: how they compare).")
RECONSTRUCT = "Reconstruct"
DETECTOR_VIEW = "The detector's view of the input, and its detections"
STAGE_GALLERY = "Reconstructions (PSNR and SSIM to the input; click one to compare it with the input)"
OPTIMISED_GALLERY = "Optimisation-based reconstructions (PSNR and SSIM to the input; click one to compare)"


def no_detection(threshold: float) -> str:
    return f"No object detected (score threshold {threshold:g}): the reconstructions show what DETR kept anyway."


def detections_found(found: list) -> str:
    return f"{len(found)} detected: " + ", ".join(detection_label(None, d) for d in found) + "."


# ---------------------------------------------------------------- layer swap

SWAP_TAB = "Layer swap"
SOURCE_LAYERS = "Source layers"
BAD_LAYERS = "Source layers: send a list of layer names (got {value!r})."
ENTRY = "Encoder layers enter the inverse…"
ENTRY_INFO = "Decoder layers always enter the inverse decoder, as its final output."
ENTRY_CHOICES = [("as the backbone map", "backbone"), ("as the final encoder output", "encoder")]
SIMILARITY = "Similarity between layers for this image (linear CKA)"
SWAP_GALLERY = "Reconstructions from the chosen layers"
SWAP_CARD = "One layer fed to the inverse of another, and how alike the layers are"

# ---------------------------------------------------------------- colour perturbation

PERTURB_TAB = "Colour perturbation"
OBJECT = "Object (or click its box)"
BAD_OBJECT = "Choose an object from the list (got {value!r})."
UNKNOWN_MODEL = "Choose a model: {choices} (got {value!r})."
BAD_FLAG = "{name} is a tick box: send true or false (got {value!r})."
BAD_HUE = "The free hue is a number from 0 to 179 (OpenCV units, degrees / 2); got {value!r}."
BAD_DATA_URL = "The image came as a data: URL that holds no image ({why}): upload the file itself."
TOO_LARGE = "The upload is over the {limit:g} MB limit: send a smaller file."
VISITOR_BUSY = ("You already have {limit} requests waiting or running, the most one visitor may have at once: "
                "wait for one to finish, then try again.")
SLOW_ONE_PER_VISITOR = ("You already have an optimisation-based reconstruction waiting or running (one per visitor, "
                        "they are slow): wait for it to finish, then try again.")
SLOW_LANE_FULL = ("Optimisation-based reconstructions are slow, so the app runs {running} at a time with at most "
                  "{waiting} waiting, and that line is full: try again in a minute (the learned inverters' "
                  "reconstructions are served meanwhile).")
SLOW_LANE_WAIT = "Waiting for the optimisation lane ({busy} requests in it, {running} run at a time)"
ABANDONED = "The page that asked for this closed, so the work stopped."
MASK = "Recolour"
MASK_CHOICES = [("GrabCut inside its box", "grabcut"), ("its whole box", "box"), ("the whole image", "image")]
PERTURBATION = "Perturbation"
PERTURBATION_CHOICES = [
    ("hue to red", "red"), ("hue to green", "green"), ("hue to blue", "blue"), ("rotate hue 120°", "rotate120"),
    ("rotate hue 240°", "rotate240"), ("grey", "grey"), ("free hue (slider)", "hue"),
]
HUE = "Free hue (OpenCV units, degrees / 2)"
PERTURB_OPTIMISED = "Optimisation-based reconstructions of both images (models without inverters)"
PERTURB_OPTIMISED_INFO = ("For a model without trained inverters: both images reconstructed from every stage by "
                          "gradient descent, in one batch (slower).")
PERTURB = "Perturb"
PERTURBING = "Running DETR on both images and the inverters"
ORIGINAL = "Original and its detections"
PERTURBED = "Perturbed and its detections"
CHANGES = "Detections before and after"
CHANGE_HEADERS = ["original", "perturbed", "score change", "what happened"]
NOTHING = "—"  # a detection that is not there, a score change that cannot be computed
ORIGINAL_GALLERY = "Reconstructions of the original (click one to compare the stage)"
PERTURBED_GALLERY = "Reconstructions of the perturbed image"


def perturbation_card_title(perturbation: str, hue: int, classifier: bool = False) -> str:
    """The perturbation card's title, naming the perturbation as the tab's choices do (and the kind of model)."""
    named = f"free hue {hue}" if perturbation == "hue" else dict((value, label) for label, value in PERTURBATION_CHOICES)[perturbation]
    question = "Does the classifier keep its classes under a new colour?" if classifier else "Does DETR keep a new colour?"
    return f"{question} {named[0].upper()}{named[1:]}"


def changes_line(rows) -> str:
    """The detections before and after as one line of a card: 'square 0.93 → square 0.88 (kept); …'."""
    return "; ".join(f"{before} → {after} ({status})" for before, after, _, status in rows)[:220]

# ---------------------------------------------------------------- attention and interventions

ATTEND_TAB = "Attention and interventions"
FIRST_IMAGE = "Image (the first image of a transplant: the object comes from here)"
SECOND_IMAGE = "Second image (a transplant's receiver)"
ACTION = "Show"
ATTEND_ACTIONS = [("where each detection looks (attention)", "attention"),
                  ("an object transplanted from the first image into the second", "transplant"),
                  ("DETR with one layer skipped", "skip")]
ATTENTION_SETTINGS = "Attention: layers, head, point"
DECODER_LAYER = "Decoder layer of the detections' maps"
ENCODER_LAYER = "Encoder layer of the point's map"
HEAD = "Head"
MEAN_OF_HEADS = "mean of the heads"
POINT_X = "Point x (view pixels; or click the encoder map)"
POINT_Y = "Point y"
TRANSPLANT_SETTINGS = "Transplant: object, where, how far"
TRANSPLANT_OBJECT = "Object of the first image (numbered as in its detections)"
TRANSPLANT_STAGE = "Paste its tokens into the second image's…"
TRANSPLANT_STAGE_CHOICES = [("encoder output (only the decoder runs)", "encoder"),
                            ("backbone map (the encoder mixes them with their new context)", "backbone")]
MOVE_ROWS = "Move down by (grid rows; negative: up)"
MOVE_COLUMNS = "Move right by (grid columns; negative: left)"
SKIP_LAYER = "Layer to skip (replaced by the identity)"
RUN_ATTEND = "Run"
ATTENDING = "Running DETR and recording its attention"
INTERVENING = "Running DETR, changing its representation, running the rest"
NO_SECOND_IMAGE = "A transplant needs a second image to receive the object: upload one, or click an intervention example."
BAD_SETTING = "{name} must be a whole number (got {value!r})."
BAD_CHOICE = "{name}: choose one of {choices} (got {value!r})."
ATTEND_VIEW = "The image, its detections (numbered as the transplant's objects)"
QUERY_MAPS = "Where each detection looks: its query's cross-attention over the feature grid"
POINT_MAP = "Encoder self-attention from a point (click the map to move it)"
AFTER = "After the intervention, and its detections"
INTERVENTION_HEADERS = ["before", "after", "score change", "what happened"]
INTERVENTION_GALLERY = "Reconstructions of the changed representation (PSNR and SSIM to the image it was captured from)"
ATTEND_ABOUT = ("**Attention**: each detection's object query attends to the encoder's output grid (DETR's "
                "cross-attention, shown per detection with the share that falls inside its box); the encoder's "
                "self-attention shows what one cell mixes in. **Transplant**: the first image's tokens under one "
                "detection are pasted into the second image's representation and the rest of DETR runs; DETR's "
                "object queries are learned and the same for every image, so whatever the decoder finds comes "
                "from this memory. **Layer skip**: one layer replaced by the identity.")
ATTENTION_EXAMPLES = "Attention examples"
INTERVENTION_EXAMPLES = "Intervention examples"


def intervention_example_label(first: str, second: str, model_name: str, action: str, object_index: int, at: str,
                               skip: str) -> str:
    """An intervention example's label, short enough to be shown whole (Gradio cuts labels near 57 characters):
    'shapes_15 #2 → shapes_05 · into the encoder · shapes' (object 2 of the first), 'cat · without decoder 1 · detr-resnet-50'."""
    first, second = (name.rsplit("/", 1)[-1].rsplit(".", 1)[0] for name in (first, second))
    if action == "transplant":
        return f"{first} #{object_index} → {second} · into the {at} · {model_name}"
    return f"{first} · without {skip} · {model_name}"


def attend_card_title(action: str) -> str:
    """The attention tab's card title, naming the action."""
    return {"attention": "Where DETR looks: each detection's cross-attention, and the encoder's from a point",
            "transplant": "An object's tokens transplanted into another image: does DETR find it there?",
            "skip": "DETR with one layer skipped: what the detector still finds"}[action]


# ---------------------------------------------------------------- image classifiers (ViT, DeiT, Swin)

CLASSES_NOT_DETECTIONS = "A classifier has classes instead of detections: it names what the image holds, with no boxes."
CLASSIFIER_OPTIMISED = ("Optimisation-based inversion is for detectors only: a classifier's reconstructions are its "
                        "learned inverters', and the exact analytic inverse of its patch embedding.")
CLASSIFIER_WHOLE_IMAGE = ("A classifier finds no objects, so there is no box or object to recolour: choose the mask "
                          "“the whole image” (the perturbation then changes every coloured pixel; grey stays grey).")
ROLLOUT_CAPTION = ("attention rollout through every block (Abnar and Zuidema 2020): the heads averaged, the identity "
                   "added, each row renormalised, the blocks multiplied; the CLS token's row")
CLASSIFIER_ATTENTION = ("For a classifier: the gallery holds the CLS token's attention over the patches in each block, "
                        "the map beside the image its attention rollout through all blocks.")
WINDOWED_ATTENTION = ("This classifier has no CLS token (its head reads the average of its final tokens) and each block "
                      "attends within windows of its patch grid (every second block's windows shifted by half a window), "
                      "so there is no CLS map nor rollout. The gallery holds, per block, the attention each patch "
                      "receives from the patches of its window (1 where they attend evenly); the map beside the image, "
                      "the attention from one patch (framed; click the map to move it) in the chosen block "
                      "(“{layer}”), over its window, the window shift undone.")


def heads_caption(head: int | None) -> str:
    return "mean of the heads" if head is None else f"head {head}"


def cls_caption(block: int, heads: str) -> str:
    return f"block {block}, {heads}: the CLS token's attention"


def received_caption(block: int, heads: str) -> str:
    return f"block {block}, {heads}: the attention each patch receives"


def point_caption(block: int, heads: str, point: tuple[int, int]) -> str:
    return f"block {block}, {heads}: attention from the patch at ({point[0]}, {point[1]}) over its window"


EMBEDDING_LAYER = "embedding"  # a classifier's layers: the embedding, its blocks and mergings, the pooled tokens
POOLED_LAYER = "final norm"
CLASSIFIER_SIMILARITY = "Linear CKA between the classifier's layers, for this image"
CLASSIFIER_NO_SWAP_LAYER = "Choose at least one block (or the embedding) to reconstruct from."
CLASSIFIER_ENTRY_CHOICES = [("as the embedding map (the inverse patch embedding)", "backbone"),
                            ("as the encoder's output (the whole inverse encoder)", "encoder")]
CLASSIFIER_ENTRY_INFO = ("Each chosen block's tokens go through the chosen inverse as if they were its input; a block "
                         "whose tokens have another shape (another stage's grid) is left out, and the note says so. "
                         "The map: every layer's tokens against every other's, the final norm's last (what the head "
                         "pools).")


def unknown_swap_layer(name: str, choices: dict[str, str]) -> str:
    """A classifier's layer swap sent an unknown layer: its layers' values (and labels where they differ)."""
    listed = ", ".join(value if label == value else f"{value} ({label})" for value, label in choices.items())
    return f"Unknown layer {name!r}: choose from {listed}."


def swap_label(layer: str, entry: str) -> str:
    """A classifier's layer-swap reconstruction: the layer and the inverse it went through."""
    return f"{layer} as the {'embedding' if entry == 'backbone' else 'encoder output'}"


def swap_left_out(layers: list[str], entry: str) -> str:
    inverse = "the inverse patch embedding" if entry == "backbone" else "the inverse encoder"
    return (f"Left out: {', '.join(layers)}, whose tokens do not have the shape {inverse} takes (another stage's grid "
            "and width); choose the other inverse for them.")


CLASSIFIER_STAGE_CARD_TITLE = "What the classifier keeps of this image, stage by stage"
CLASSIFIER_ATTENTION_CARD_TITLE = "Where the classifier looks: its CLS token's attention per block, and their rollout"
WINDOWED_ATTENTION_CARD_TITLE = "Where the classifier looks: what each patch receives per block, and a point's window"
CARD_CLASSIFIER_INPUT = "input (a classifier: classes, no boxes)"
CLASSIFIER_SKIP_CARD_TITLE = "The classifier with one block skipped: the classes it still gives"
CARD_BLOCK_SKIPPED = "the same input, one block skipped"
CARD_ORIGINAL, CARD_PERTURBED = "original", "perturbed (the whole image)"  # a classifier's perturbation card
ROLLOUT = "attention rollout"
POINT_IN_WINDOW = "attention from a point, within its window"
CLASS_CHANGE_HEADERS = ["class, original", "class, perturbed", "probability change", "what happened"]


def class_change_rows(changes) -> list[list[str]]:
    """A classifier's classes before and after a change, one row per class (the perturbation's changes table)."""
    return [[f"{change.label} {change.before:.2f}", f"{change.label} {change.after:.2f}",
             f"{change.after - change.before:+.2f}", change.status] for change in changes]


CLASS_SKIP_HEADERS = ["class, unmodified", "class, block skipped", "probability change", "what happened"]


def _classes(classes: list, present: list[str], multi_label: bool) -> str:
    listed = ", ".join(f"{p.label} {p.score:.2f}" for p in classes)
    rule = "each class scored alone, present above 0.5" if multi_label else "its most probable class"
    return f"Top classes: {listed}. Given to the image ({rule}): {', '.join(present) or 'none'}."


def classes_found(classes: list, present: list[str], multi_label: bool) -> str:
    """A classifier's summary: its top classes with their probabilities, and those it gives the image."""
    return f"{CLASSES_NOT_DETECTIONS} {_classes(classes, present, multi_label)}"


def classifier_skip_summary(block: str, classes: list, present: list[str], multi_label: bool) -> str:
    """A classifier's block skip in one line: the block and its classes without it."""
    return f"Without {block} (the identity in its place): {_classes(classes, present, multi_label)}"


def classifier_notice(label: str, cls_token: bool) -> str:
    """The notice under the model choice for a classifier: what each tab shows for it."""
    attend = ("its CLS token's attention per block and their rollout, " if cls_token else
              "the attention each patch receives per block and a point's attention within its window (it has no CLS "
              "token), ")
    return (f"**{label}** is an image classifier, not a detector: it gives classes with their probabilities where a "
            "detector gives detections. The stage reconstructions show them with the reconstructions from each stage, "
            "the layer swap its blocks fed to the inverse of another and the similarity of its layers, "
            "the colour perturbation the classes before and after recolouring the whole image, the attention tab "
            f"{attend}and its classes with one block skipped; the transplant is for detectors only.")


def classifier_without_inverters(label: str) -> str:
    return f"{label} has no trained inverters: its classes are shown, without reconstructions."


def classifier_source_label(source) -> str:
    """A classifier stage's name in a caption: 'embedding (learned)', 'encoder entry 2', 'encoder output'..."""
    if source.entry is not None:
        return f"encoder entry {source.entry}"
    return {"embedding": "embedding (learned)", "encoder": "encoder output", "pooled": "pooled token",
            "logits": "logits"}[source.stage]


def classifier_not_served(label: str, what: str) -> str:
    """A tab or tool that serves detectors only, asked for a classifier: why, and what to use instead."""
    reasons = {
        "intervention": ("a transplant moves a detector's object tokens into another image; choose the attention "
                         "action, or skip a block"),
        "tool": "the tools serve detectors; open the classifier in the app's tabs",
    }
    return f"{label} is an image classifier, not a detector: {reasons[what]}."


# ---------------------------------------------------------------- classification vs reconstruction

TRADEOFF_TAB = "Classification vs reconstruction"
ARCHITECTURE = "Architecture"
LATENT = "Latent size"
LAMBDA = "λ (weight of reconstruction)"
TRAIN = "Train on digits"
DIGITS = "Test digits (top) and their reconstructions (bottom)"
FRONTIER = "Shipped digits sweep: accuracy against reconstruction MSE (star: your run)"


def sweep_plot(metric: str) -> str:
    """The label of the shipped sweep's plot of `metric` ('accuracy' or 'mse') against λ."""
    return f"Shipped sweep: test {metric} against λ"


def tradeoff_summary(arch: str, result) -> str:
    stopped = ("" if result.steps >= result.planned_steps
               else f" (stopped after {result.steps} of {result.planned_steps} steps: the machine is busy)")
    return (f"**{arch}, latent {result.latent}, λ = {result.lam:g}**: test accuracy {result.accuracy:.1%}, "
            f"reconstruction MSE {result.mse:.4f}, trained in {result.seconds:.1f} s{stopped}.")


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
TRADEOFF_CARD = "Classification vs reconstruction, trained live on digits"
TRADEOFF_CARD_MODEL = "Model: {arch}, latent {latent}, trained live on digits (arXiv:2401.09237)"

# ---------------------------------------------------------------- about

ABOUT_TAB = "About"
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
- **Attention and interventions**: where each detection looks (the decoder's cross-attention) and what the encoder
  mixes from a point; an object's tokens transplanted into another image; DETR with one layer skipped. No trained
  inverter is needed; a model with them also shows the changed representation's reconstructions.

The **Shapes world** (a tiny DETR trained on synthetic shapes whose classes have typical colours: circle red,
square green, triangle blue, star yellow) runs offline, as does its sibling where only 40% of the objects (not 80%)
wear their class's colour, to see how much colour reliance comes from the data; **DETR-R50** is `facebook/detr-resnet-50` from the
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


def learned_vs_optimised(results: dict) -> str:
    """The shipped Shapes comparison (checkpoints/shapes/optimisation/results.json) as a markdown table:
    per method and stage, PSNR to the input and the share of the original's objects the detector finds again."""
    stages = list(next(iter(results["methods"].values()))["stages"])
    lines = ["### Learned vs optimisation-based inversion",
             f"On {results['images']} held-out Shapes images, per stage: PSNR to the input · objects the detector "
             "finds again · seconds per request on a CPU core. Optimisation needs no trained inverter; a flat image of "
             "the input's own mean colour (which no stage tells) scores well on PSNR, which is why the objects "
             "found again matter.", "",
             "| method | " + " | ".join(stages) + " | s / request |", "|---" * (len(stages) + 2) + "|"]
    for name, row in results["methods"].items():
        cells = [f"{values['psnr']:.1f} dB · {values['found'] or 0:.0%}" for values in row["stages"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {row['seconds_per_request']:.1f} |")
    return "\n".join(lines)


CERTIFICATE_MEANING = {
    "converged": "converged: what this reconstruction loses is the detector's",
    "not converged": "not converged: part of what this reconstruction loses may be the inverter's, not DETR's",
    "still improving": "not converged, still improving: part of what this reconstruction loses may be the inverter's, "
                       "not DETR's",
    "undecided": "not yet certified either way",
}


def inverter_certificate(results: dict) -> str:
    """The headroom study's verdict on the Shapes DETR's shipped inverters (checkpoints/shapes/headroom/results.json),
    one line per stage: PSNR, the margin over each baseline, converged or not and the 4x step that says so."""
    rule = results["rule"]
    lines = ["### Are the inverters the limit?",
             f"Shapes world, 500 held-out images: a stage's reconstruction shows the detector's loss only where its "
             f"inverse module is converged ({rule['step']}x the capacity and {rule['step']}x the training steps each gain "
             f"< {rule['psnr_gain_below']} dB and < {rule['objects_found_gain_below']} objects found again). Baselines: "
             "the image averaged over each feature cell, and a flat image of its mean colour.", ""]
    for stage, certificate in results["shipped"].items():
        margins = certificate["margin_over_baselines_db"]
        why = f" ({certificate['why']})" if certificate["why"] else ""
        lines.append(f"- **{stage}**: {certificate['psnr']:.2f} dB, {margins['grid_average']:+.2f} dB over the grid "
                     f"average, {margins['mean_colour']:+.2f} over the mean colour; "
                     f"{CERTIFICATE_MEANING[certificate['verdict']]}{why}.")
    return "\n".join(lines)


def method_picture() -> str:
    """The forward stages and their inverses as a small HTML diagram."""
    stages = ["image", "backbone", "encoder", "decoder", "prediction"]
    box = "padding:6px 12px;border:1px solid #888;border-radius:6px;background:{};"
    forward = " → ".join(f'<span style="{box.format("#e8f0fe")}">{stage}</span>' for stage in stages)
    inverse = " ← ".join(f'<span style="{box.format("#fdecea")}">{stage}</span>' for stage in stages)
    return (f'<div style="line-height:2.6;font-family:sans-serif;color:#222">DETR: {forward}<br>'
            f"inverses: {inverse}<br><small>each ← is a trained inverse module; chained, they map any stage back "
            "to pixels</small></div>")
