"""A classifier in the catalogue without the tab server: inverters that do not fit it leave it served with its
classes only (said on the page), the settings the tabs update when it is chosen have none of a detector's, and
its result cards name what they show."""

import pandas as pd
import pytest
from PIL import Image

from inversion.core.registry import read_space_config
from inversion.figures import STAGE_CARD_TITLE
from inversion.shapes.world import generate_sample
from inversion.testing import write_space_config
from lab import classifier_service, text
from lab.catalogue import load_catalogue
from lab.links import LinkState
from lab.tabs import attend, layer_swap, perturb, stages
from lab.tabs.attend import MEAN_OF_HEADS, setting_updates
from support.paths import REPO


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    """The ViT served with the Swin's inverters (refused: made for another classifier), and the Swin with its own."""
    folder = tmp_path_factory.mktemp("classifier-catalogue")
    (folder / "checkpoints").symlink_to(REPO / "checkpoints")
    real = read_space_config(REPO / "space_config.yaml")["models"]
    models = {"shapes-vit": {**real["shapes-vit"], "inverters": real["shapes-swin"]["inverters"]},
              "shapes-swin": real["shapes-swin"]}
    return load_catalogue(write_space_config(folder / "space_config.yaml", models, "shapes-vit", {"max_megapixels": 1,
                                                                                                  "max_upload_mb": 1}))


def test_a_classifier_whose_inverters_do_not_fit_is_served_with_its_classes_only(catalogue):
    vit = catalogue.models["shapes-vit"]
    assert vit.inverters is None and "trained for a Swin, not a ViT" in vit.inverters_problem
    assert catalogue.problems[vit.spec.label].endswith(
        "which failed to load: its classes and attention maps as usual, no reconstructions. Running the app yourself? "
        "Its log says what went wrong.")
    result = classifier_service.stage_reconstructions(vit, generate_sample(15)[0])
    assert result.panels == [] and result.note.endswith("has no trained inverters: its classes are shown, without "
                                                        "reconstructions.")
    assert [p.label for p in result.input.classes] and set(result.input.present) <= {"circle", "square", "triangle", "star"}


def test_choosing_a_classifier_updates_the_settings_to_its_own(catalogue):
    vit, swin = catalogue.models["shapes-vit"], catalogue.models["shapes-swin"]
    decoder, encoder, head, skip = setting_updates(vit)
    assert (decoder["choices"], decoder["value"]) == ([], None)
    assert (skip["choices"], skip["value"]) == ([f"block {block}" for block in range(1, 5)], "block 1")
    assert encoder["choices"] == [1, 2, 3, 4] and [value for _, value in head["choices"]] == [MEAN_OF_HEADS, 0, 1, 2, 3]
    decoder, encoder, head, skip = setting_updates(swin)  # the point map's block: every stage's, counted on
    assert encoder["choices"] == [1, 2, 3, 4] and [value for _, value in head["choices"]] == [MEAN_OF_HEADS, 0, 1, 2, 3]
    assert skip["choices"] == ["block 1", "block 2", "block 3", "block 4"]  # two stages of two
    assert layer_swap.layer_values(vit) == ["block 0", "block 1", "block 2", "block 3", "block 4"]
    assert layer_swap.layer_choices(swin) == [("embedding", "block 0"), ("block 1", "block 1"), ("block 2", "block 2"),
                                              ("merging 1", "merging 1"), ("block 3", "block 3"), ("block 4", "block 4")]
    assert layer_swap.entry_update(swin)["choices"] == text.CLASSIFIER_ENTRY_CHOICES


def test_a_classifier_s_cards_name_what_it_shows(tmp_path):
    path = str(tmp_path / "view.png")
    Image.new("RGB", (64, 64), "grey").save(path)
    view, shown = (path, []), [(path, "logits · PSNR 17.1 dB · SSIM 0.35")]
    staged = stages.card(LinkState(model="shapes-vit"), view, shown, [], classifier=True)
    assert staged.title == text.CLASSIFIER_STAGE_CARD_TITLE and staged.rows[0][0].caption == text.CARD_CLASSIFIER_INPUT
    assert stages.card(LinkState(), view, shown, []).title == STAGE_CARD_TITLE
    changes = pd.DataFrame([["star 0.98", "star 0.25", "-0.73", "lost"]], columns=text.CLASS_CHANGE_HEADERS)
    perturbed = perturb.card(LinkState(perturbation="grey"), view, view, changes, shown, shown, classifier=True)
    assert perturbed.title == "Does the classifier keep its classes under a new colour? Grey"
    assert perturbed.subtitle == "star 0.98 → star 0.25 (lost)" and perturbed.rows[1][0].caption == text.CARD_PERTURBED
    attended = attend.card(LinkState(action="attention"), view, shown, path, None, None, [], classifier=True)
    assert attended.title == text.CLASSIFIER_ATTENTION_CARD_TITLE and attended.rows[1][0].caption == text.ROLLOUT
    windowed = attend.card(LinkState(action="attention"), view, shown, path, None, None, [], classifier=True, cls_token=False)
    assert windowed.title == text.WINDOWED_ATTENTION_CARD_TITLE and windowed.rows[1][0].caption == text.POINT_IN_WINDOW
    skipped = attend.card(LinkState(action="skip", skip="block 2"), view, [], path, view, changes, shown, classifier=True)
    assert skipped.title == text.CLASSIFIER_SKIP_CARD_TITLE and skipped.rows[0][1].caption == text.CARD_BLOCK_SKIPPED
    assert skipped.subtitle == "star 0.98 → star 0.25 (lost)" and len(skipped.rows) == 2
