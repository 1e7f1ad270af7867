"""Judges: other detectors of the same classes score a model's stage reconstructions (their AP against the
annotations, the objects they find again), so that a reconstruction tuned to the model's own features is also
read by eyes it was not tuned to."""

import pytest
from PIL import Image

from inversion.core.errors import UserFacingError
from inversion.core.registry import load_model
from inversion.experiments.evaluate import evaluate, evaluate_detector, judged_stages, load_judges, load_samples, open_coco
from inversion.shapes import export_coco

pytestmark = pytest.mark.shapes


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    folder = tmp_path_factory.mktemp("judges") / "data"
    export_coco(folder, n=12, seed=1)
    dataset = open_coco(str(folder), None, load_model("shapes").detector.config.id2label, False, None)
    samples, _ = load_samples(dataset, None)
    return folder, dataset.coco, samples


def test_a_judge_reads_the_images_it_is_given(heldout):
    _, coco, samples = heldout
    judge = load_model("shapes-conditional")
    originals = [sample.image for sample in samples]
    grey = [Image.new("RGB", image.size, (128, 128, 128)) for image in originals]
    judged = judged_stages(judge, coco, samples, {"backbone": originals, "prediction": grey}, batch_size=6)
    assert judged["clean"]["AP"] == pytest.approx(evaluate_detector(judge, coco, samples, 6)["AP"])
    assert judged["threshold"] == judge.detector.threshold == 0.5  # its own, from the space config
    assert judged["ap"]["backbone"]["AP"] == pytest.approx(judged["clean"]["AP"])  # the originals themselves
    assert judged["shape_preservation"]["backbone"]["found"] == pytest.approx(1.0)
    assert judged["ap"]["prediction"]["AP"] < 0.01 and judged["shape_preservation"]["prediction"]["found"] < 0.05


def test_evaluate_writes_each_judges_scores_per_stage(heldout, tmp_path):
    folder, _, _ = heldout
    results = evaluate("shapes", str(folder), str(tmp_path / "out"), sections=("stages",), layers=False,
                       judges=("shapes-conditional",))
    judged = results["stages"]["judged"]["shapes-conditional"]
    assert set(judged["ap"]) == set(judged["shape_preservation"]) == {"backbone", "encoder", "decoder", "prediction"}
    # the judge finds fewer objects again the deeper the stage, as the model itself does
    assert judged["shape_preservation"]["backbone"]["found"] > judged["shape_preservation"]["prediction"]["found"]
    assert "Judged by `shapes-conditional`" in (tmp_path / "out" / "report.md").read_text()


def test_a_judge_must_be_a_detector_of_the_same_classes(tmp_path):
    model = load_model("shapes")
    with pytest.raises(UserFacingError, match="image classifier"):
        load_judges(("shapes-vit",), model)
    with pytest.raises(UserFacingError, match="add the stages section"):
        evaluate(model, "unused", str(tmp_path / "out"), sections=("color",), judges=("shapes-conditional",))
