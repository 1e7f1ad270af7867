"""The app's words: the choices offered match what the service accepts, the trade-off tab says where DETR sits, and
the About tab says whether each stage's inverter is converged."""

import json

from inversion.experiments.colour import PERTURBATIONS
from lab import service, text
from lab.tabs import about


def test_every_choice_is_a_value_the_service_accepts():
    assert {value for _, value in text.MASK_CHOICES} == set(service.MASK_KINDS)
    assert {value for _, value in text.PERTURBATION_CHOICES} == {*PERTURBATIONS, "hue"}
    assert {value for _, value in text.ENTRY_CHOICES} == {value for _, value in text.CLASSIFIER_ENTRY_CHOICES} == set(service.ENTRIES)


def test_the_tradeoff_tab_places_detr_at_lambda_zero():
    assert "λ = 0" in text.TRADEOFF_ABOUT and "DETR" in text.TRADEOFF_ABOUT


def test_notices_and_labels_read_as_sentences():
    assert text.notice([text.hub_unreachable("DETR-R50", ["Shapes world"])]) == (
        "⚠️ **DETR-R50** is not available right now: its weights come from the Hugging Face Hub, which this server "
        "cannot reach. Everything else works with **Shapes world**: choose it above. Running the app yourself? Connect "
        "to the internet and start it again; the weights are downloaded once, then kept.")
    assert text.example_label("shapes_15.png", "shapes") == "shapes_15 · shapes"


def test_the_about_tab_says_per_stage_whether_the_shipped_inverters_are_converged():
    results = json.loads(about.HEADROOM_RESULTS.read_text())
    lines = [line for line in text.inverter_certificate(results).splitlines() if line.startswith("- **")]
    assert [line.split("**")[1] for line in lines] == list(results["shipped"])
    for line, certificate in zip(lines, results["shipped"].values()):
        assert f"{certificate['margin_over_baselines_db']['grid_average']:+.2f} dB over the grid average" in line
        assert text.CERTIFICATE_MEANING[certificate["verdict"]] in line
        if certificate["evidence"]:
            assert f"{certificate['evidence']['from']} to {certificate['evidence']['to']}" in line
