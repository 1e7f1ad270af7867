"""The reconstruct CLI writes one labelled figure; bad inputs get a message, not a traceback."""

from PIL import Image

from inversion.__main__ import main
from inversion.core.checkpoints import save_inverters
from inversion.core.detector import Detector
from inversion.testing import random_image


def checkpoint_folder(tmp_path, tiny_detector, tiny_stack):
    """An inverter checkpoint whose config names a local detector folder."""
    tiny_detector.model.save_pretrained(tmp_path / "detector")
    named = Detector(tiny_detector.model, tiny_detector.working_size, name=str(tmp_path / "detector"))
    return save_inverters(tiny_stack, tmp_path / "inverters", named)


def test_cli_writes_a_figure_with_every_stage(tmp_path, tiny_detector, tiny_stack, capsys):
    folder = checkpoint_folder(tmp_path, tiny_detector, tiny_stack)
    random_image(90, 60).save(tmp_path / "input.png")
    out = tmp_path / "grid.png"
    assert main(["reconstruct", str(tmp_path / "input.png"), "--model", str(folder), "--out", str(out)]) == 0
    figure = Image.open(out)
    assert figure.width > 4 * figure.height / 2  # five panels side by side
    assert "wrote" in capsys.readouterr().out


def test_cli_names_a_bad_image_and_an_unknown_model(tmp_path, tiny_detector, tiny_stack, capsys):
    folder = checkpoint_folder(tmp_path, tiny_detector, tiny_stack)
    (tmp_path / "bad.jpg").write_bytes(b"definitely not a jpeg")
    assert main(["reconstruct", str(tmp_path / "bad.jpg"), "--model", str(folder), "--out", str(tmp_path / "x.png")]) == 2
    assert "bad.jpg is not an image we can read" in capsys.readouterr().err
    random_image(20, 20).save(tmp_path / "ok.png")
    assert main(["reconstruct", str(tmp_path / "ok.png"), "--model", "no-such-model", "--out", str(tmp_path / "x.png")]) == 2
    assert "neither a model in the space config" in capsys.readouterr().err


def test_the_hub_model_offline_is_reported_clearly(tmp_path, capsys):
    random_image(20, 20).save(tmp_path / "ok.png")
    assert main(["reconstruct", str(tmp_path / "ok.png"), "--model", "detr-resnet-50", "--out", str(tmp_path / "x.png")]) == 2
    assert "facebook/detr-resnet-50" in capsys.readouterr().err


def test_a_detector_alone_of_another_family_gets_optimised_reconstructions(tmp_path, capsys):
    import torch

    from inversion.core.families import family_for
    from inversion.testing import tiny_config

    config = tiny_config("conditional_detr")
    torch.manual_seed(0)
    family_for(config).model_class(config).save_pretrained(tmp_path / "detector")
    random_image(90, 60).save(tmp_path / "input.png")
    out = tmp_path / "grid.png"
    arguments = ["reconstruct", str(tmp_path / "input.png"), "--detector", str(tmp_path / "detector"),
                 "--working-size", "64", "64", "--steps", "2", "--out", str(out)]
    assert main(arguments) == 0
    printed = capsys.readouterr().out
    assert "has no learned inverters: optimising" in printed and "wrote" in printed
    figure = Image.open(out)
    assert figure.width > 4 * figure.height / 2  # the input and four stages
    assert main([*arguments[:-2], "--working-size", "16", "16", "--out", str(out)]) == 2
    assert "below this detector's stride" in capsys.readouterr().err
