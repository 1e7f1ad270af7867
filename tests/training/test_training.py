"""The trainer: modular and end-to-end objectives learn; runs log, save, resume and repeat."""

import json

import pytest
import torch
from safetensors.torch import load_file

from inversion.__main__ import main
from inversion.core.checkpoints import load_inverters
from inversion.core.detector import Detector
from inversion.core.errors import UserFacingError
from inversion.core.families import FAMILIES, family_for
from inversion.core.inverters import InverterConfig, InverterStack
from inversion.core.registry import load_model
from inversion.testing import random_image, tiny_config
from inversion.training import trainer
from inversion.training.networks import DetectorNetwork, network_for, network_type, with_defaults
from inversion.training.objectives import EndToEndObjective, ModularObjective
from inversion.training.trainer import TrainingConfig, build_objective, build_optimizers, resume_run, train


def fit(objective, representations, steps: int, learning_rates: dict) -> tuple[dict, dict]:
    """Train `objective` on one fixed batch; return the first and last losses."""
    config = TrainingConfig(data="", steps=steps, warmup_steps=1, learning_rates=learning_rates)
    optimizers, schedulers = build_optimizers(config, objective)
    first = {}
    for _ in range(steps):
        losses = objective(representations)
        first = first or {stage: float(loss.detach()) for stage, loss in losses.items()}
        sum(losses.values()).backward()
        for stage, optimizer in optimizers.items():
            optimizer.step()
            optimizer.zero_grad()
            schedulers[stage].step()
    with torch.no_grad():
        last = {stage: float(loss) for stage, loss in objective(representations).items()}
    return first, last


@pytest.fixture()
def fixed_batch(tiny_detector):
    return tiny_detector.capture([random_image(64, 96, seed=s) for s in range(4)])


def test_modular_training_halves_every_local_loss(tiny_detector, fixed_batch):
    torch.manual_seed(0)
    objective = ModularObjective(InverterStack(InverterConfig.for_detector(tiny_detector)))
    rates = {"backbone": 3e-3, "encoder": 1e-3, "decoder": 1e-3, "prediction": 3e-3}
    first, last = fit(objective, fixed_batch, 50, rates)
    for stage in first:
        assert last[stage] <= first[stage] / 2, (stage, first[stage], last[stage])


# Last over first loss after 30 steps, a little above what was measured: the DETR-layout families measured
# 0.70-0.81, .08-.13, .28-.39, .03-.12; Deformable DETR (four levels, 128 tokens, heads scoring ~0.01 everywhere at
# initialisation) .39 .63 .84 .80; YOLOS (its encoder target has the positions added) .41 .41 .74 .14; RT-DETR
# (transformers' near-zero BatchNorm initialisation leaves its maps almost constant) .91 .03 .94 .27.
MEASURED = {"Deformable DETR": {"backbone": 0.45, "encoder": 0.7, "decoder": 0.9, "prediction": 0.88},
            "RT-DETR": {"backbone": 0.95, "encoder": 0.05, "decoder": 0.97, "prediction": 0.3},
            "YOLOS": {"backbone": 0.47, "encoder": 0.47, "decoder": 0.82, "prediction": 0.2}}


@pytest.mark.parametrize("model_type", [model_type for family in FAMILIES for model_type in family.model_types])
def test_thirty_steps_lower_every_modules_loss_in_every_family(model_type):
    config = tiny_config(model_type)
    torch.manual_seed(0)
    detector = Detector(family_for(config).model_class(config), working_size=(64, 96), threshold=0.0)
    batch = detector.capture([random_image(64, 96, seed=s) for s in range(4)])
    objective = ModularObjective(InverterStack(InverterConfig.for_detector(detector)))
    rates = {"backbone": 3e-3, "encoder": 1e-3, "decoder": 1e-3, "prediction": 3e-3}
    first, last = fit(objective, batch, 30, rates)
    assert set(first) == {"backbone", "encoder", "decoder", "prediction"}
    measured_at_most = MEASURED.get(detector.family.name, {"backbone": 0.85, "encoder": 0.2, "decoder": 0.45, "prediction": 0.2})
    for stage, ratio in measured_at_most.items():
        assert last[stage] < first[stage] * ratio, (model_type, stage, first[stage], last[stage])


def test_end_to_end_training_lowers_its_pixel_loss(tiny_detector, fixed_batch):
    torch.manual_seed(0)
    objective = EndToEndObjective(InverterConfig.for_detector(tiny_detector))
    rates = {"backbone": 3e-3, "encoder": 1e-3, "decoder": 1e-3, "prediction": 1e-3}
    first, last = fit(objective, fixed_batch, 20, rates)
    for stage in first:
        assert last[stage] < first[stage] * 0.9, (stage, first[stage], last[stage])


def run_config(folder, out, **changes) -> TrainingConfig:
    settings = dict(
        data=str(folder), out=str(out), detector=str(folder.parent / "detector"), working_size=(64, 96),
        steps=4, batch_size=4, warmup_steps=1, val_every=2, save_every=2, log_every=1, val_images=4, workers=0,
    )
    return TrainingConfig(**{**settings, **changes})


@pytest.fixture()
def dataset(tmp_path, tiny_detector):
    """A small image folder next to the tiny detector saved as a local folder."""
    tiny_detector.model.save_pretrained(tmp_path / "detector")
    images = tmp_path / "images"
    images.mkdir()
    for index in range(10):
        random_image(48 + 4 * index, 90 - 3 * index, seed=index).save(images / f"{index}.png")
    return images


def test_a_run_logs_validation_per_stage_and_saves_loadable_inverters(dataset, tmp_path):
    result = train(run_config(dataset, tmp_path / "run"))
    assert set(result["stages"]) == {"backbone", "encoder", "decoder", "prediction"}
    for metrics in result["stages"].values():
        assert 0 < metrics["psnr"] < 60 and -1 <= metrics["ssim"] <= 1 and metrics["mse"] > 0
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "val"] == [2, 4]
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3, 4]
    stack, config = load_inverters(tmp_path / "run")
    assert config["notes"]["step"] == 4 and config["notes"]["objective"] == "modular"
    assert config["detector"]["id"] == str(dataset.parent / "detector")
    assert config["working_size"] == [64, 96]


def test_resume_continues_from_the_saved_step_with_the_same_optimizer_state(dataset, tmp_path):
    full = tmp_path / "full"
    train(run_config(dataset, full, steps=4, save_every=2))
    part = tmp_path / "part"
    train(run_config(dataset, part, steps=2, save_every=2))
    state_at_2 = json.loads((part / "training_state.json").read_text())
    assert state_at_2["step"] == 2
    assert state_at_2["schedulers"]["backbone"]["last_epoch"] == 2
    train(run_config(dataset, part, steps=4, save_every=2, resume=True))
    resumed = json.loads((part / "training_state.json").read_text())
    assert resumed["step"] == 4
    records = [json.loads(line) for line in (part / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3, 4]  # no step repeated
    # Adam's step counters went on from 2: the optimizer state was restored, not restarted.
    steps = [t for k, t in load_file(part / "training_state.safetensors").items() if k.endswith("/step")]
    assert steps and all(float(t) == 4 for t in steps)


def test_a_run_warm_starts_from_the_inverters_of_another_detector_of_its_sizes(dataset, tmp_path, tiny_detector):
    start = tmp_path / "start"
    train(run_config(dataset, start, steps=2))
    tiny_detector.model.save_pretrained(tmp_path / "fine-tuned")  # another detector (its id differs), the same sizes
    train(run_config(dataset, tmp_path / "run", detector=str(tmp_path / "fine-tuned"), init=str(start), steps=2,
                     stages=("backbone",)))
    started, ended = (load_file(folder / "inverters.safetensors") for folder in (start, tmp_path / "run"))
    assert started.keys() == ended.keys()
    assert {name.split(".")[0] for name in started if not torch.equal(started[name], ended[name])} == {"backbone"}
    _, config = load_inverters(tmp_path / "run")
    assert config["detector"]["id"] == str(tmp_path / "fine-tuned")
    assert config["notes"]["train_config"]["init"] == str(start)
    assert config["notes"]["init_notes"] == load_inverters(start)[1]["notes"]  # where it started, should START change


def test_end_to_end_chains_fine_tune_the_init_stack_each_starting_from_its_weights(dataset, tmp_path):
    train(run_config(dataset, tmp_path / "modular", steps=2))
    config = run_config(dataset, tmp_path / "run", objective="end_to_end", feature_weight=0.0, init=str(tmp_path / "modular"))
    objective = build_objective(config, network_for(config))
    start, _ = load_inverters(tmp_path / "modular")
    for chain in objective.chains.values():
        assert all(torch.equal(chain.state_dict()[name], weights) for name, weights in start.state_dict().items())


class Killed(Exception):
    """Stands for the process being killed in the middle of a run."""


def test_a_run_killed_mid_epoch_and_resumed_ends_with_the_weights_of_one_never_stopped(dataset, tmp_path, monkeypatch):
    # 3 batches an epoch; killed at step 3 (saved at 2): the resumed run must skip the epoch's first two batches
    # and go on to the next epoch's order, as the run that never stopped did.
    settings = dict(steps=6, batch_size=3, save_every=2, val_every=6, log_every=6)
    train(run_config(dataset, tmp_path / "whole", **settings))
    step, calls = trainer.training_step, []

    def killed_at_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise Killed
        return step(*args, **kwargs)

    monkeypatch.setattr(trainer, "training_step", killed_at_3)
    with pytest.raises(Killed):
        train(run_config(dataset, tmp_path / "killed", **settings))
    monkeypatch.setattr(trainer, "training_step", step)
    assert json.loads((tmp_path / "killed" / "training_state.json").read_text())["batches_drawn"] == 2
    train(run_config(dataset, tmp_path / "killed", resume=True, **settings))
    whole = load_file(tmp_path / "whole" / "inverters.safetensors")
    resumed = load_file(tmp_path / "killed" / "inverters.safetensors")
    assert all(torch.equal(whole[name], resumed[name]) for name in whole)


def test_the_same_seed_gives_the_same_weights(dataset, tmp_path):
    train(run_config(dataset, tmp_path / "a", steps=2, seed=7))
    train(run_config(dataset, tmp_path / "b", steps=2, seed=7))
    first = load_file(tmp_path / "a" / "inverters.safetensors")
    second = load_file(tmp_path / "b" / "inverters.safetensors")
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_end_to_end_run_saves_one_chain_per_stage(dataset, tmp_path):
    train(run_config(dataset, tmp_path / "e2e", objective="end_to_end", steps=2))
    for stage in ("backbone", "encoder", "decoder", "prediction"):
        assert (tmp_path / "e2e" / f"chain-{stage}" / "inverters.safetensors").is_file()


def test_a_missing_dataset_is_reported_without_a_traceback(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "nowhere"), "--detector", str(tmp_path), "--steps", "1"])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_folder_holding_a_run_is_refused_unless_resumed_or_overwritten(dataset, tmp_path):
    out = tmp_path / "run"
    train(run_config(dataset, out, steps=2))
    before = (out / "metrics.jsonl").read_text()
    with pytest.raises(UserFacingError, match=r"--out .*run is not empty \(inverters.json, inverters.safetensors, metrics.jsonl"
                                              r".*pass --resume to continue its run, --overwrite to replace it"):
        train(run_config(dataset, out, steps=2))
    assert (out / "metrics.jsonl").read_text() == before  # nothing appended
    train(run_config(dataset, out, steps=3, overwrite=True))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3]  # a fresh log, not 1, 2, 1, 2, 3


def test_resume_refuses_changed_settings_naming_them_and_a_finished_run(dataset, tmp_path):
    out = tmp_path / "run"
    train(run_config(dataset, out, steps=2))
    with pytest.raises(UserFacingError, match=r"--resume: the run in .* was started with other settings \(working_size was "
                                              r"\[64, 96\], now \[32, 64\]; batch_size was 4, now 2\)"):
        train(run_config(dataset, out, steps=4, resume=True, working_size=(32, 64), batch_size=2))
    with pytest.raises(UserFacingError, match=r"already finished at step 2 \(--steps 2\): pass a larger --steps"):
        train(run_config(dataset, out, steps=2, resume=True))
    saved = json.loads((out / "train_config.json").read_text())
    del saved["max_unreadable"]  # a run from before that setting existed
    (out / "train_config.json").write_text(json.dumps(saved))
    train(run_config(dataset, out, steps=3, resume=True, val_every=1))  # how long and how often may change


def test_stages_a_run_does_not_train_are_marked_and_not_scored(dataset, tmp_path, capsys):
    result = train(run_config(dataset, tmp_path / "run", steps=2, stages=("backbone", "decoder")))
    assert result["stages"]["backbone"]["trained"] and result["stages"]["backbone"]["psnr"] > 0
    assert {stage: result["stages"][stage] for stage in ("encoder", "decoder", "prediction")} == {
        stage: {"trained": False} for stage in ("encoder", "decoder", "prediction")}
    assert set(result["local_loss"]) == {"backbone", "decoder"}
    printed = capsys.readouterr().out
    assert "step 2 validation PSNR: backbone " in printed and "encoder not trained, decoder not trained" in printed
    _, config = load_inverters(tmp_path / "run")
    assert config["notes"]["trained_stages"] == ["backbone"]


def test_an_inverse_backbone_trained_alone_runs_the_detectors_backbone_only_and_learns_the_same(dataset, tmp_path,
                                                                                                  monkeypatch):
    wholes = []
    whole_forward = Detector.forward_stages
    monkeypatch.setattr(Detector, "forward_stages", lambda self, *args, **kwargs: wholes.append(1) or
                        whole_forward(self, *args, **kwargs))
    train(run_config(dataset, tmp_path / "alone", stages=("backbone",)))
    assert not wholes  # neither a training step nor validation ran the transformer
    monkeypatch.setattr(DetectorNetwork, "capture", lambda self, images, stages: self.model.capture(images))
    train(run_config(dataset, tmp_path / "whole", stages=("backbone",)))
    assert wholes
    alone, whole = (load_file(tmp_path / run / "inverters.safetensors") for run in ("alone", "whole"))
    for name, weights in whole.items():
        torch.testing.assert_close(alone[name], weights, rtol=0, atol=1e-6)


def test_the_inverse_modules_capacity_is_set_from_the_command_line(dataset, tmp_path):
    flags = ["--encoder-layers", "1", "--decoder-layers", "2", "--ffn-dim", "48", "--prediction-hidden", "40", "20",
             "--backbone-widths", "24", "16", "16", "8", "8"]
    assert main(["train", "--data", str(dataset), "--detector", str(dataset.parent / "detector"), "--working-size", "64",
                 "96", "--out", str(tmp_path / "run"), "--steps", "1", "--batch-size", "2", "--val-images", "1", *flags]) == 0
    stack, config = load_inverters(tmp_path / "run")
    assert {key: config["architecture"][key] for key in ("encoder_layers", "decoder_layers", "ffn_dim", "prediction_hidden",
                                                         "backbone_widths")} == {
        "encoder_layers": 1, "decoder_layers": 2, "ffn_dim": 48, "prediction_hidden": [40, 20], "backbone_widths": [24, 16, 16, 8, 8]}
    assert len(stack.encoder.layers) == 1 and len(stack.decoder.layers) == 2


def test_validation_is_logged_while_training(dataset, tmp_path, capsys):
    train(run_config(dataset, tmp_path / "run", steps=4, val_every=2))
    printed = capsys.readouterr().out
    assert printed.count("validation PSNR: backbone") == 2 and "step 2 validation" in printed


def test_a_run_given_relative_paths_loads_from_any_folder(tmp_path, monkeypatch, tiny_detector, capsys):
    work = tmp_path / "work"
    (work / "images").mkdir(parents=True)
    tiny_detector.model.save_pretrained(work / "dets" / "x")
    for index in range(4):
        random_image(48, 72, seed=index).save(work / "images" / f"{index}.png")
    monkeypatch.chdir(work)
    assert main(["train", "--data", "images", "--detector", "dets/x", "--working-size", "64", "96", "--out", "runs/a",
                 "--steps", "1", "--batch-size", "2", "--workers", "0", "--val-images", "1"]) == 0
    recorded = json.loads((work / "runs" / "a" / "train_config.json").read_text())
    assert recorded["data"] == str(work / "images") and recorded["detector"] == str(work / "dets" / "x")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_model(str(work / "runs" / "a")).inverters is not None
    assert main(["train", "--data", str(work / "images"), "--detector", str(work / "dets" / "x"), "--working-size", "64",
                 "96", "--out", str(work / "runs" / "a"), "--steps", "2", "--batch-size", "2", "--workers", "0",
                 "--val-images", "1", "--resume"]) == 0


def test_a_run_saves_the_detector_it_loaded_when_the_space_config_changes_under_it(dataset, tmp_path, monkeypatch):
    """The space config is read once, when the run starts: a deployer editing it while a long run goes on (here: the
    model removed, right after the detector is loaded) changes nothing the run saves."""
    from inversion.training import trainer

    config_file = tmp_path / "space_config.yaml"
    config_file.write_text(f"models:\n  tiny:\n    detector: {dataset.parent / 'detector'}\n    working_size: [64, 96]\n")
    monkeypatch.setenv("INVERSION_SPACE_CONFIG", str(config_file))
    check = trainer.check_working_size

    def edited_then_checked(detector):
        config_file.write_text("models: {}\n")
        check(detector)

    monkeypatch.setattr(trainer, "check_working_size", edited_then_checked)
    train(run_config(dataset, tmp_path / "run", model="tiny", detector=None, working_size=None))
    _, config = load_inverters(tmp_path / "run")
    assert config["notes"]["step"] == 4 and config["detector"]["id"] == str(dataset.parent / "detector")


def test_a_run_with_a_patch_critic_saves_it_with_the_training_state_and_resumes_it(dataset, tmp_path):
    adversarial = dict(adversarial_weight=0.5, stages=("backbone",), save_every=2)
    part = tmp_path / "part"
    train(run_config(dataset, part, steps=2, **adversarial))
    state = load_file(part / "training_state.safetensors")
    saved = {key.removeprefix("helper/critic/"): tensor for key, tensor in state.items() if key.startswith("helper/critic/")}
    assert saved and not any("critic" in key for key in load_file(part / "inverters.safetensors"))
    assert json.loads((part / "inverters.json").read_text())["notes"]["backbone_loss"]["patch_adversarial"] == 0.5
    config = run_config(dataset, part, steps=4, resume=True, **adversarial)
    config = with_defaults(config, network_type(config))
    objective = build_objective(config, network_for(config))
    fresh = {key: tensor.clone() for key, tensor in objective.critic.state_dict().items()}
    assert resume_run(config, objective, *build_optimizers(config, objective)) == (2, 2)
    resumed = objective.critic.state_dict()
    assert all(torch.equal(resumed[key], saved[key]) for key in resumed) and set(resumed) == set(saved)
    assert not all(torch.equal(fresh[key], saved[key]) for key in saved)
    train(run_config(dataset, part, steps=4, resume=True, **adversarial))
    assert json.loads((part / "training_state.json").read_text())["step"] == 4
