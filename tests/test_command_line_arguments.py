"""Every command refuses bad arguments in one line, before it reads or writes anything."""

import pytest

from inversion.__main__ import main


@pytest.mark.parametrize("arguments, message", [
    (["train", "--data", "D", "--working-size", "0", "0"], "argument --working-size: 0 is not a whole number of at least 1"),
    (["train", "--data", "D", "--working-size", "-5", "64"], "argument --working-size: -5 is not a whole number"),
    (["train", "--data", "D", "--batch-size", "0"], "argument --batch-size: 0 is not a whole number of at least 1"),
    (["train", "--data", "D", "--steps", "0"], "argument --steps: 0 is not"),
    (["train", "--data", "D", "--steps", "ten"], "argument --steps: 'ten' is not a whole number"),
    (["train", "--data", "D", "--workers", "-1"], "argument --workers: -1 is not a whole number of at least 0"),
    (["train", "--data", "D", "--val-fraction", "1.5"], "argument --val-fraction: 1.5 is not a fraction from 0 to 1"),
    (["train", "--data", "D", "--grad-clip", "0"], "argument --grad-clip: 0 is not a number above 0"),
    (["train", "--data", "D", "--weight-decay", "nan"], "argument --weight-decay: nan is not a number of at least 0"),
    (["train", "--data", "D", "--max-unreadable", "2"], "argument --max-unreadable: 2 is not a fraction"),
    (["train", "--data", "D", "--resume", "--overwrite"], "argument --overwrite: not allowed with argument --resume"),
    (["evaluate", "--data", "D", "--out", "O", "--batch-size", "0"], "argument --batch-size: 0 is not"),
    (["evaluate", "--data", "D", "--out", "O", "--max-images", "0"], "argument --max-images: 0 is not"),
    (["interventions", "--data", "D", "--out", "O", "--batch-size", "-2"], "argument --batch-size: -2 is not"),
    (["optimise", "--shapes", "0"], "argument --shapes: 0 is not"),
    (["optimise", "--shapes", "2", "--steps", "0"], "argument --steps: 0 is not"),
    (["cache-features", "--data", "D", "--out", "O", "--shard-size", "0"], "argument --shard-size: 0 is not"),
    (["cache-features", "--data", "D", "--out", "O", "--workers", "x"], "argument --workers: 'x' is not"),
])
def test_a_bad_argument_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, arguments, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(arguments)
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: {message}") and captured.err.count("\n") == 1, captured.err
    assert "--help" in captured.err and not list(tmp_path.iterdir())


@pytest.fixture()
def images(tmp_path):
    from inversion.testing import random_image

    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(4):
        random_image(40, 60, seed=index).save(folder / f"{index}.png")
    return folder


@pytest.mark.parametrize("arguments, message", [
    (["--lr", "backbone=abc"], "--lr backbone=abc: the rate 'abc' is not a number above 0."),
    (["--lr", "backbone=-1"], "--lr backbone=-1: the rate -1 is not a number above 0."),
    (["--lr", "neck=1e-3"], "--lr neck=1e-3: the stage must be one of backbone, encoder, decoder, prediction"),
    (["--working-size", "20", "20"], "The working size 20 x 20 is below this detector's stride (32 pixels a feature cell): "
                                     "give at least 32 x 32."),  # the detector refuses it as it loads
    (["--working-size", "64", "100"], "The working size 64x100 must be a multiple of the detector's stride 32"),
    (["--objective", "end_to_end", "--stages", "backbone"],
     "Cannot train with these settings: stages choose modules of the modular objective"),
    (["--feature-weight", "-1"], "Cannot train with these settings: feature_weight must be at least 0, not -1.0."),
    (["--adversarial-weight", "-0.5"], "Cannot train with these settings: adversarial_weight must be at least 0, not -0.5."),
    (["--backbone-widths", "32", "16"], "backbone_widths has 2 entries; stride 32 needs 5"),
    (["--backbone-widths", "32", "33", "16", "8", "8"], "backbone_widths [33] cannot be group-normalised"),
])
def test_settings_train_cannot_use_are_refused_before_anything_is_written(tmp_path, capsys, tiny_detector_folder, images,
                                                                          arguments, message):
    out = tmp_path / "run"
    code = main(["train", "--data", str(images), "--detector", str(tiny_detector_folder), "--out", str(out),
                 "--steps", "1", "--workers", "0", *arguments])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"error: {message}")
    assert not out.exists()
