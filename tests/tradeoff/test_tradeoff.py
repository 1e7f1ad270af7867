"""The classification-vs-reconstruction study: gradient routing, the trade-off on digits, the sweep
CLI, the app tab's functions and the shipped sweep."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from inversion.tradeoff.__main__ import main
from inversion.tradeoff.data import DataError, load, load_digits
from inversion.tradeoff.live import load_sweep, sweep_frame, sweep_rows, train_live
from inversion.tradeoff.models import ARCHITECTURES, ModelConfig, TradeoffModel
from inversion.tradeoff.sweep import DEFAULT_LAMBDAS, dominated_area, figure, parse_lambdas
from inversion.tradeoff.train import RunConfig, routed_losses, train_run
from support.paths import REPO

SHIPPED_RESULTS = REPO / "checkpoints" / "tradeoff" / "results.json"


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(module: torch.nn.Module, before: list[torch.Tensor]) -> bool:
    return any(not torch.equal(p, q) for p, q in zip(module.parameters(), before))


@pytest.mark.parametrize("loss, frozen, moved", [("ce", "decoder", "classifier"), ("mse", "classifier", "decoder")])
def test_a_step_on_one_loss_leaves_the_other_head_unchanged(digits, loss, frozen, moved):
    torch.manual_seed(0)
    model = TradeoffModel(ModelConfig("fc-s", 4))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = {name: snapshot(getattr(model, name)) for name in ("encoder", "decoder", "classifier")}
    losses = routed_losses(model, digits.train.images[:64], digits.train.labels[:64], lam=0.5)
    losses[loss].backward()
    optimizer.step()
    assert not changed(getattr(model, frozen), before[frozen])
    assert changed(getattr(model, moved), before[moved])
    assert changed(model.encoder, before["encoder"])


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0])
def test_routed_gradients_match_the_papers_rule(digits, arch, lam):
    """decoder <- d MSE, classifier <- d CE, encoder <- lam d MSE + (1 - lam) d CE, checked against
    plain autograd on an unrouted forward."""
    torch.manual_seed(0)
    model = TradeoffModel(ModelConfig(arch, 4))
    images, labels = digits.train.images[:16], digits.train.labels[:16]
    losses = routed_losses(model, images, labels, lam)
    model.zero_grad()
    losses["routed"].backward()
    routed = {name: [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in getattr(model, name).parameters()]
              for name in ("encoder", "decoder", "classifier")}

    _, reconstruction, logits = model(images)
    mse = torch.nn.functional.mse_loss(reconstruction, images)
    ce = torch.nn.functional.cross_entropy(logits, labels)
    def grads(loss, module):
        return torch.autograd.grad(loss, list(module.parameters()), retain_graph=True, allow_unused=True)
    expected = {
        "decoder": grads(mse, model.decoder),
        "classifier": grads(ce, model.classifier),
        "encoder": [lam * a + (1 - lam) * b for a, b in zip(grads(mse, model.encoder), grads(ce, model.encoder))],
    }
    for name in routed:
        for got, want in zip(routed[name], expected[name]):
            assert torch.allclose(got, want, atol=1e-6, rtol=1e-4), name
    assert float(losses["loss"]) == pytest.approx(lam * mse.item() + (1 - lam) * ce.item(), rel=1e-5)


def test_the_two_objectives_compete_on_digits(digits):
    """Small latent, fixed seeds: lambda = 1 reconstructs better, lambda = 0 classifies better."""
    runs = {lam: train_run(RunConfig("fc-m", 4, lam, seed=0, steps=800), digits)[1] for lam in (0.0, 1.0)}
    assert runs[1.0].mse < runs[0.0].mse
    assert runs[0.0].accuracy > runs[1.0].accuracy


def test_the_sweep_cli_writes_every_configuration_and_a_png_per_plot(tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["sweep", "--arch", "fc-s", "--latent", "2", "4", "--lambdas", "0", "0.5", "...", "1",
            "--seeds", "2", "--steps", "5", "--out", str(out)]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    keys = {(r["arch"], r["latent"], r["lam"], r["seed"]) for r in results["runs"]}
    assert keys == {("fc-s", z, lam, s) for z in (2, 4) for lam in (0.0, 0.5, 1.0) for s in (0, 1)}
    assert len(results["runs"]) == 12 and len(results["summary"]) == 6 and len(results["frontier"]) == 2
    for run in results["runs"]:
        assert 0.0 <= run["accuracy"] <= 1.0 and 0.0 <= run["mse"] <= 1.0
    for plot in ("accuracy", "mse", "frontier"):
        with Image.open(out / f"{plot}.png") as image:
            assert image.format == "PNG" and image.width > 300

    # --resume keeps finished runs and adds the new ones; `plot` merges and redraws
    assert main([*args[:-2], "--lambdas", "0.25", "--resume", "--out", str(out)]) == 0
    assert len(json.loads((out / "results.json").read_text())["runs"]) == 16
    assert main(["plot", str(out / "results.json"), "--out", str(tmp_path / "redrawn")]) == 0
    assert (tmp_path / "redrawn" / "frontier.png").exists()


def test_the_live_function_returns_reconstructions_and_metrics_in_range():
    fractions = []
    result = train_live("fc-s", latent=4, lam=0.3, seed=0, steps=60, progress=lambda f, text: fractions.append(f))
    assert result.images.shape == result.reconstructions.shape == (10, 8, 8)
    assert result.reconstructions.min() >= 0.0 and result.reconstructions.max() <= 1.0
    assert list(result.labels) == list(range(10)) and result.predictions.shape == (10,)
    assert 0.0 <= result.accuracy <= 1.0 and 0.0 <= result.mse <= 1.0 and result.seconds > 0
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert result.grid(scale=4).size == (4 * (10 * 10 - 2), 4 * 18)
    assert result.steps == result.planned_steps == 60


def test_a_live_run_stops_at_its_time_limit():
    result = train_live("vit", latent=8, lam=0.5, max_seconds=0.0)
    assert result.steps == 0 and result.planned_steps == 500
    assert result.reconstructions.shape == (10, 8, 8) and 0.0 <= result.accuracy <= 1.0


def test_the_shipped_sweep_covers_every_default_configuration():
    results = load_sweep(SHIPPED_RESULTS)
    config = results["config"]
    assert set(config["archs"]) == set(ARCHITECTURES) and config["lambdas"] == list(DEFAULT_LAMBDAS)
    expected = len(config["archs"]) * len(config["latents"]) * len(config["lambdas"]) * len(config["seeds"])
    assert len(results["runs"]) == expected
    rows = sweep_rows(results, "fc-m")
    assert len(rows) == len(config["latents"]) * len(config["lambdas"]) and isinstance(rows[0]["latent"], str)
    assert list(sweep_frame(results).columns)[:3] == ["arch", "latent", "lam"]
    for plot in ("accuracy", "mse", "frontier"):
        assert (SHIPPED_RESULTS.parent / f"{plot}.png").exists()
    fig = figure(results, "frontier", archs=["fc-m"], highlight={"arch": "fc-m", "lam": 0.5, "accuracy": 0.9, "mse": 0.02})
    assert len(fig.axes) == 1


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_fits_every_image_shape(arch, shape):
    model = TradeoffModel(ModelConfig(arch, 6, shape, 10))
    z, reconstruction, logits = model(torch.rand(2, *shape))
    assert z.shape == (2, 6) and reconstruction.shape == (2, *shape) and logits.shape == (2, 10)


def test_data_errors_say_what_to_do(tmp_path):
    with pytest.raises(DataError, match="--data-root"):
        load("mnist")
    with pytest.raises(DataError, match="not a folder"):
        load("cifar10", tmp_path / "missing")
    with pytest.raises(DataError, match="unknown data set"):
        load("imagenet")
    digits = load("digits", limit=100)
    assert digits.image_shape == (1, 8, 8) and len(digits.train) == 100 and len(digits.test) == 360
    assert float(digits.train.images.max()) <= 1.0


def test_lambda_lists_and_the_frontier_area():
    assert parse_lambdas(["0", "0.1", "...", "1"]) == list(DEFAULT_LAMBDAS)
    assert parse_lambdas(["1", "0", "0.5"]) == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError):
        parse_lambdas(["0", "...", "1"])
    with pytest.raises(ValueError):
        parse_lambdas(["1.5"])
    # one point at (MSE 0.1, accuracy 0.9) dominates 0.1 x 0.4 within the corner (0.2, 0.5)
    assert dominated_area([(0.1, 0.9)], (0.2, 0.5)) == pytest.approx(0.04)
    assert dominated_area([(0.1, 0.9), (0.15, 0.8)], (0.2, 0.5)) == pytest.approx(0.04)  # dominated point adds nothing
    assert dominated_area([(0.05, 0.6), (0.1, 0.9)], (0.2, 0.5)) == pytest.approx(0.05 * 0.1 + 0.1 * 0.4)


def test_the_vit_cls_latent_is_its_cls_token():
    torch.manual_seed(0)
    encoder = TradeoffModel(ModelConfig("vit-cls", 6, (1, 8, 8), 10)).encoder.eval()
    images = torch.rand(3, 1, 8, 8)
    tokens = encoder.embed(encoder.patches.split(images))
    tokens = torch.cat([encoder.cls.expand(3, -1, -1), tokens], dim=1) + encoder.position
    with torch.no_grad():
        hidden = encoder.blocks(tokens)
        torch.testing.assert_close(encoder(images), encoder.out(hidden[:, 0]), rtol=0, atol=0)
        assert (encoder(images) - encoder.out(hidden.mean(1))).abs().max() > 1e-3
