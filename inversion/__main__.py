"""The command line: `python -m inversion COMMAND ...` (or `inversion COMMAND ...` once installed).

    reconstruct     one image reconstructed from every stage (and layer), as a figure
    train           train inverse modules (`accelerate launch -m inversion train ...` for DDP)
    evaluate        the paper's experiments as numbers, plots and a report
    optimise        optimisation-based inversion against the learned inverters
    cache-features  precompute a detector's targets for the transformer inverses
    publish         upload an inverter stack to the Hub with a model card

train, evaluate, cache-features and publish take an image classifier (ViT, DeiT, Swin) as well: --model shapes-vit,
or --classifier FOLDER_OR_HUB_ID; the others, a detector.
    train-job       train, evaluate and publish inverters as one Hugging Face Job (--dry-run: its spec and cost)
    deploy          upload the app to a Hugging Face Space (--dry-run lists what it would send)
    interventions   attention in boxes, feature transplants and layer skips as numbers (no inverters needed)
    certify         whether a detector's inverters are the limit, from evaluations of 4x larger and longer stacks

The Shapes world and the trade-off study have their own: `python -m inversion.shapes`,
`python -m inversion.tradeoff`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from .command_line import (
    Parser,
    add_data,
    add_dataset_checks,
    add_max_images,
    add_model,
    dispatch,
    model_from_args,
    natural_float,
    natural_int,
    positive_float,
    positive_int,
    share,
)
from .core.errors import UserFacingError

ARCHITECTURE_FLAGS = ("backbone_widths", "encoder_layers", "decoder_layers", "ffn_dim", "prediction_hidden",
                      "prediction_input", "backbone_architecture")  # InverterConfig overrides
PATH_FIELDS = ("data", "val_data", "init", "feature_cache", "detector", "classifier")  # resolved against the current folder


def reconstruct_command(args: argparse.Namespace) -> None:
    from .core.images import load_image
    from .core.reconstruct import reconstruct
    from .core.stages import STAGE_SOURCES, layer_sources
    from .figures import STAGE_CARD_TITLE, model_line, reconstruction_grid, result_card, save_card, stage_panels
    from .optimisation import OptimisationConfig, optimise_inversions

    image = load_image(args.image)
    model = model_from_args(args)
    representations = model.detector.capture([image])
    sources = [*STAGE_SOURCES, *(layer_sources(representations) if args.layers else [])]
    if model.inverters is None:  # a detector alone: optimisation-based reconstructions, with a progress bar
        print(f"{model.spec.label} has no learned inverters: optimising images from {len(sources)} sources")
        config = OptimisationConfig() if args.steps is None else OptimisationConfig(steps=args.steps)
        reconstructions = optimise_inversions(model.detector, representations, sources, config, _progress_bar()).images
    else:
        reconstructions = reconstruct(model.inverters, representations, sources)
    reconstruction_grid(representations, reconstructions).savefig(args.out, dpi=120)
    print(f"wrote {args.out}")
    if args.card:
        stages = {source: images for source, images in reconstructions.items() if source in STAGE_SOURCES}
        card = result_card(args.card_title or STAGE_CARD_TITLE, stage_panels(representations, stages),
                           model_line(model.spec.label, model.spec.detector, model.spec.revision), args.link)
        save_card(card, args.card)
        print(f"wrote {args.card}")


def _progress_bar():
    """A tqdm bar fed by a (fraction, message) progress callback."""
    from tqdm import tqdm

    bar = tqdm(total=100, unit="%")

    def update(fraction: float, message: str) -> None:
        bar.set_description(message)
        bar.update(round(100 * fraction) - bar.n)
        if fraction >= 1:
            bar.close()

    return update


def training_config(args: argparse.Namespace):
    """The TrainingConfig that `train`'s arguments describe (stages and learning rates left out take the network's
    defaults when the run starts)."""
    from .training.trainer import TrainingConfig

    rates = {}
    for item in args.lr:
        stage, _, value = item.partition("=")
        if stage not in _stage_names():
            raise UserFacingError(f"--lr {item}: the stage must be one of {', '.join(_stage_names())} (as STAGE=RATE).")
        try:
            rates[stage] = positive_float(value)
        except argparse.ArgumentTypeError as error:
            raise UserFacingError(f"--lr {item}: the rate {error}.") from None
    architecture = {name: getattr(args, name) for name in ARCHITECTURE_FLAGS if getattr(args, name)}
    skipped = {"command", "handler", "lr", *ARCHITECTURE_FLAGS}
    fields = {key: value for key, value in vars(args).items() if key not in skipped}
    fields["stages"] = tuple(fields["stages"] or ())
    fields["working_size"] = tuple(fields["working_size"]) if fields["working_size"] else None
    for name in PATH_FIELDS:  # recorded resolved, so that a run resumes, and its checkpoint loads, from any folder
        if fields[name] and Path(fields[name]).exists():
            fields[name] = str(Path(fields[name]).resolve())
    return TrainingConfig(**fields, learning_rates=rates, architecture=architecture)


def _stage_names() -> tuple[str, ...]:
    """Every stage a detector's or a classifier's inverters train (--stages and --lr name them)."""
    from .training.networks import NETWORKS

    return tuple(dict.fromkeys(stage for network in NETWORKS.values() for stage in network.stages))


def train_command(args: argparse.Namespace) -> None:
    from .training.trainer import train, validation_line

    result = train(training_config(args))
    if result:
        print("validation PSNR by stage: " + validation_line(result))


def evaluate_command(args: argparse.Namespace) -> None:
    from .core.classifier_stages import CLASSIFIER_STAGES
    from .experiments.evaluate import evaluate

    sections = tuple(args.sections) if args.sections else None
    results = evaluate(model_from_args(args), args.data, args.out, args.split, args.max_images, args.batch_size,
                       sections, args.skip_unknown_categories, args.max_unreadable, judges=tuple(args.judge))
    if "detector" in results:
        print(f"detector AP {results['detector']['AP']:.3f}, AP50 {results['detector']['AP50']:.3f}; wrote {args.out}")
    else:
        quality = results["stages"]["quality"]
        print("PSNR (dB) / agreement by stage: " + ", ".join(
            f"{stage} {quality[stage]['psnr']:.2f} / {quality[stage]['agreement']:.2f}" for stage in CLASSIFIER_STAGES)
            + f"; wrote {args.out}")


def certify_command(args: argparse.Namespace) -> None:
    from .experiments.certificate import certificate_table, certify

    certificates = certify(args.evaluation, args.more_capacity, args.more_steps, args.less_capacity, args.fewer_steps)
    print(certificate_table(certificates), end="")
    if args.json:
        Path(args.json).write_text(json.dumps(certificates, indent=1) + "\n")
        print(f"wrote {args.json}")


def interventions_command(args: argparse.Namespace) -> None:
    from .experiments.attention_interventions import run

    results = run(model_from_args(args).detector, args.data, args.out, args.split, args.max_images, args.batch_size,
                  args.seed, args.skip_unknown_categories, args.max_unreadable)
    moved = {stage: results["transplant"][f"{stage}, moved place"]["found_with_label"] for stage in ("backbone", "encoder")}
    print(f"attention in box {results['attention']['in_box']['mean']:.3f}; moved objects found with their label: "
          + ", ".join(f"{stage} {share:.3f}" for stage, share in moved.items()) + f"; wrote {args.out}")


def optimise_command(args: argparse.Namespace) -> None:
    from .experiments import optimised_vs_learned as study
    from .optimisation import OptimisationConfig

    earlier = Path(args.out or ".") / "results.json"
    if args.keep_earlier_rows and not (args.out and earlier.is_file()):
        raise UserFacingError("--keep-earlier-rows keeps the rows of an earlier run's results.json in --out: "
                              f"there is none at {earlier}; run once without it first.")
    model = model_from_args(args)
    if args.shapes:
        from .shapes.detector import HELDOUT_SEED
        from .shapes.world import generate_sample, sample_rng

        images = [generate_sample(sample_rng(HELDOUT_SEED, index))[0] for index in range(args.shapes)]
    else:
        from .training.sources import open_dataset

        dataset = open_dataset(args.data, args.split)
        images = [dataset[index][0] for index in range(min(args.max_images or len(dataset), len(dataset)))]
    config = OptimisationConfig() if args.steps is None else OptimisationConfig(steps=args.steps)
    methods = {"learned": study.learned} if model.inverters is not None else {}
    methods[f"optimised ({config.steps} steps, all stages in one batch)"] = study.optimised(config)
    if args.legacy:
        methods[f"previous optimiser ({study.LEGACY.steps} steps per stage)"] = study.optimised(study.LEGACY, True)
    methods["mean colour of the input (not from the features)"] = study.mean_colour
    results = study.compare(model, images, methods, shown=3)
    shown = results.pop("shown")
    results["config"] = dataclasses.asdict(config)
    if args.keep_earlier_rows:
        results = study.keep_earlier_rows(results, json.loads(earlier.read_text()))
    print(study.markdown_table(results))
    if args.out:
        from .core.stages import STAGES
        from .figures import method_comparison_grid

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        (out / "table.md").write_text(study.markdown_table(results) + "\n")
        named = {name.split(" (")[0]: pictures for name, pictures in shown["methods"].items()}
        method_comparison_grid(shown["inputs"], named, list(STAGES)).savefig(out / "comparison.png", dpi=80)
        print(f"wrote {out}/results.json, table.md, comparison.png")


def cache_features_command(args: argparse.Namespace) -> None:
    import torch

    from .training.feature_cache import FeatureCache, write_cache
    from .training.sources import open_dataset

    model = model_from_args(args, "cuda" if torch.cuda.is_available() else "cpu")
    network = getattr(model, "classifier", None) or model.detector
    dataset = open_dataset(args.data, args.split)
    cache = write_cache(network, dataset, args.out, args.shard_size, args.batch_size, args.workers, args.max_unreadable)
    print(f"wrote {len(FeatureCache(cache))} images' targets to {args.out}")


def publish_command(args: argparse.Namespace) -> None:
    from .release.publish import build_repo_folder, publish

    if args.dry_run:
        folder = build_repo_folder(args.checkpoint, args.repo_id, args.dry_run, args.eval)
        print(f"wrote {folder} (dry run: nothing uploaded)")
        return
    staging = Path("runs") / "publish" / args.repo_id.replace("/", "--")
    folder = build_repo_folder(args.checkpoint, args.repo_id, staging, args.eval)
    print(f"uploaded: {publish(folder, args.repo_id, args.private)}")


def train_job_command(args: argparse.Namespace) -> None:
    from .release.jobs import estimate, job_spec, job_token, shown_spec, submit, training_steps

    token = None if args.dry_run else job_token()
    spec = job_spec(args.model, args.flavor, args.push_to, args.code, args.steps, args.dataset, token)
    shown = shown_spec(spec)
    print(json.dumps({**shown, "command": shown["command"][:2] + ["<the script below>"]}, indent=1))
    print("script: " + spec["command"][-1].replace(" && ", " &&\n  "))
    print(estimate(args.flavor, training_steps(args.flavor, args.steps)).summary())
    if args.dry_run:
        print("dry run: nothing submitted")
        return
    print(f"job finished: {submit(spec, args.namespace)}")


def deploy_command(args: argparse.Namespace) -> None:
    from .release.space import BINARY_LIMIT_BYTES, InverterPin, check_limits, checked_config, deploy, space_files

    pins = [InverterPin.parse(text) for text in args.inverters]
    if not args.dry_run:
        print(f"deployed: {deploy(args.space_id, args.root, args.private, pins)}")
        return
    files = space_files(args.root)
    for file in files:
        route = "LFS/Xet" if file.through_lfs else ("REFUSED" if file.refused_by_hub else "git")
        print(f"{file.size:>12,d}  {route:8s} {file.path}")
    print(f"{len(files)} files, {sum(file.size for file in files) / 1e6:.1f} MB "
          f"(binaries over {BINARY_LIMIT_BYTES / 1e6:g} MB must go through LFS/Xet)")
    check_limits(files)
    config = checked_config(args.root, pins)
    for pin in pins:
        print(f"space_config.yaml as deployed: {pin.model} serves the inverters {pin.repo} at {pin.commit} "
              "(checked: trained for its pinned detector commit)")
    if pins:
        print(config, end="")


def parser() -> argparse.ArgumentParser:
    """The parser of every command, each setting its `handler`."""
    main = Parser(prog="python -m inversion", description=__doc__.split("\n")[0])
    commands = main.add_subparsers(dest="command", required=True)

    command = commands.add_parser("reconstruct", help="reconstruct one image from every stage into a figure")
    command.add_argument("image", help="path of the input image")
    add_model(command)
    command.add_argument("--out", default="reconstruction.png", help="where to write the figure (PNG)")
    command.add_argument("--layers", action="store_true", help="also reconstruct from every encoder and decoder layer")
    command.add_argument("--steps", type=int, help="optimisation steps, for a detector without inverters (default: 60)")
    command.add_argument("--card", help="also write a result card for a slide (1920 x 1080 .png, or .pdf / .svg)")
    command.add_argument("--link", help="the link printed on the card, with its QR code")
    command.add_argument("--card-title", help="the card's title (default: what DETR keeps, stage by stage)")
    command.set_defaults(handler=reconstruct_command)

    command = commands.add_parser("train", help="train inverse modules for a DETR or an image classifier (modular by default)")
    _train_arguments(command)
    command.set_defaults(handler=train_command)

    command = commands.add_parser("evaluate", help="the paper's experiments as numbers, plots and a report")
    add_model(command, classifiers=True)
    add_data(command)
    add_max_images(command)
    command.add_argument("--out", required=True, help="output folder")
    command.add_argument("--batch-size", type=positive_int, default=16)
    add_dataset_checks(command)
    command.add_argument("--sections", nargs="+", choices=("stages", "layer_swap", "color"),
                         help="which experiments (default: all three for a detector; a classifier has stages only)")
    command.add_argument("--judge", nargs="+", default=[], metavar="MODEL",
                         help="other detectors of the same classes (names or folders) that score the stage reconstructions "
                              "too: their AP and the objects they find again")
    command.set_defaults(handler=evaluate_command)

    command = commands.add_parser("certify", help="whether a detector's inverters are the limit: their certificate from "
                                                  "the evaluations of 4x larger and 4x longer-trained neighbours")
    command.add_argument("evaluation", help="the stack's evaluation folder (`evaluate --out`, stages section)")
    command.add_argument("--more-capacity", metavar="EVALUATION", help="the same recipe with 4x the inverse modules' parameters")
    command.add_argument("--more-steps", metavar="EVALUATION", help="the same recipe with 4x the training steps")
    command.add_argument("--less-capacity", metavar="EVALUATION", help="the same recipe with a quarter of the parameters")
    command.add_argument("--fewer-steps", metavar="EVALUATION", help="the same recipe with a quarter of the steps")
    command.add_argument("--json", metavar="FILE", help="also write the certificate as JSON")
    command.set_defaults(handler=certify_command)

    command = commands.add_parser("interventions", help="attention in boxes, feature transplants and layer skips as numbers")
    add_model(command)
    add_data(command, coco_only=True)
    add_max_images(command)
    command.add_argument("--out", required=True, help="output folder")
    command.add_argument("--batch-size", type=positive_int, default=16)
    add_dataset_checks(command)
    command.add_argument("--seed", type=int, default=0, help="chooses where each transplanted object is moved")
    command.set_defaults(handler=interventions_command)

    command = commands.add_parser("optimise", help="optimisation-based inversion against the learned inverters")
    add_model(command)
    images = command.add_mutually_exclusive_group(required=True)
    images.add_argument("--shapes", type=positive_int, metavar="N", help="the first N held-out Shapes images")
    images.add_argument("--data", help="a COCO-format folder or a folder of images")
    command.add_argument("--split", help="a COCO 2017 split inside --data, e.g. val2017")
    add_max_images(command)
    command.add_argument("--steps", type=positive_int, default=None, help="optimisation steps (default: the chosen config's)")
    command.add_argument("--legacy", action="store_true", help="also run the previous optimiser (slow: 200 steps per stage)")
    command.add_argument("--out", help="a folder for results.json")
    command.add_argument("--keep-earlier-rows", action="store_true",
                         help="keep the rows of the methods not run this time from --out's earlier results.json "
                              "(e.g. the previous optimiser's, when the learned row is measured again)")
    command.set_defaults(handler=optimise_command)

    command = commands.add_parser("cache-features", help="precompute a detector's (or classifier's) targets for the "
                                                         "transformer inverses")
    add_model(command, classifiers=True)
    add_data(command)
    command.add_argument("--out", required=True)
    command.add_argument("--shard-size", type=positive_int, default=512)
    command.add_argument("--batch-size", type=positive_int, default=16)
    command.add_argument("--workers", type=natural_int, default=2)
    add_dataset_checks(command, categories=False)
    command.set_defaults(handler=cache_features_command)

    command = commands.add_parser("publish", help="upload an inverter stack to a Hugging Face Hub model repo")
    command.add_argument("checkpoint", help="inverter checkpoint folder (inverters.json + inverters.safetensors)")
    command.add_argument("--repo-id", required=True, help="owner/name of the Hub model repo")
    command.add_argument("--eval", help="an evaluation output folder whose metrics go in the card")
    command.add_argument("--dry-run", metavar="FOLDER", help="only write the repo folder here; upload nothing")
    command.add_argument("--private", action="store_true")
    command.set_defaults(handler=publish_command)

    command = commands.add_parser("train-job", help="train, evaluate and publish inverters as one Hugging Face Job")
    command.add_argument("--model", default="detr-resnet-50", help="a model in space_config.yaml (default: %(default)s)")
    command.add_argument("--flavor", required=True, help="the Jobs hardware, e.g. a100-large or h200x8")
    command.add_argument("--push-to", required=True, metavar="ORG/NAME", help="the model repo the inverters go to")
    command.add_argument("--code", required=True, metavar="OWNER/SPACE@COMMIT",
                         help="the deployed Space whose code the job runs, at a commit")
    command.add_argument("--steps", type=positive_int, help="training steps (default: the GPU recipe's for the flavor)")
    command.add_argument("--dataset", default="detection-datasets/coco", help="the Hub dataset mounted at /data")
    command.add_argument("--namespace", help="the user or organisation the job runs (and is billed) under")
    command.add_argument("--dry-run", action="store_true", help="print the job's spec and estimated cost; submit nothing")
    command.set_defaults(handler=train_job_command)

    command = commands.add_parser("deploy", help="upload the app to a Hugging Face Space")
    command.add_argument("space_id", help="owner/name of the Space")
    command.add_argument("--root", default=".", help="the project folder (default: the current one)")
    command.add_argument("--dry-run", action="store_true", help="list the files and sizes; check the Hub's limits; upload nothing")
    command.add_argument("--inverters", action="append", default=[], metavar="MODEL=ORG/NAME@COMMIT",
                         help="serve MODEL with the inverters published in ORG/NAME at COMMIT (checked against its detector)")
    command.add_argument("--private", action="store_true")
    command.set_defaults(handler=deploy_command)
    return main


def _train_arguments(command: argparse.ArgumentParser) -> None:
    from .command_line import add_classifier
    from .training.networks import NETWORKS
    from .training.objectives import DEFAULT_FEATURE_WEIGHT
    from .training.trainer import TrainingConfig

    defaults = TrainingConfig(data="")
    add_data(command)
    add_model(command, detector_alone=False, classifiers=True)
    command.add_argument("--val-data", help="separate validation dataset (default: a fixed part of --data)")
    command.add_argument("--val-split", help="a COCO 2017 split inside --val-data, e.g. val2017")
    command.add_argument("--val-fraction", type=share, default=defaults.val_fraction)
    command.add_argument("--out", default=defaults.out)
    command.add_argument("--detector", help="Hub id or folder of a DETR, overriding the model's")
    add_classifier(command)
    command.add_argument("--revision", help="the detector's (or classifier's) Hub revision (pin a commit)")
    command.add_argument("--working-size", type=positive_int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                         help="a detector's canvas in pixels, a multiple of its stride (default: the model's)")
    command.add_argument("--objective", choices=["modular", "end_to_end"], default=defaults.objective)
    command.add_argument("--feature-weight", type=float, default=defaults.feature_weight,
                         help="modular objective: add this weight times the feature-matching term through the detector's "
                              "own backbone (a relative error, so a weight means the same for any detector) to the "
                              f"inverse backbone's pixel MSE (default {DEFAULT_FEATURE_WEIGHT:g}, the headroom study's "
                              "choice; 0: pixel MSE alone, the paper's)")
    command.add_argument("--adversarial-weight", type=float, default=defaults.adversarial_weight,
                         help="modular objective: add this weight times a patch critic's hinge loss to the inverse "
                              "backbone's (the critic trains beside it; default 0: none)")
    command.add_argument("--stages", nargs="+", choices=_stage_names(),
                         help="modular objective: which inverse modules to train (default all four of the network's: "
                              + "; ".join(f"a {kind}'s {', '.join(network.stages)}" for kind, network in NETWORKS.items())
                              + ")")
    command.add_argument("--init", help="start from the weights of this inverter checkpoint folder (made for this "
                         "detector, or for another of its sizes and family: the one it was fine-tuned from); each "
                         "end-to-end chain starts from the whole stack")
    command.add_argument("--feature-cache", help="train from targets written by `python -m inversion cache-features`")
    for name in ("steps", "batch_size", "val_every", "val_images", "save_every", "log_every"):
        command.add_argument("--" + name.replace("_", "-"), type=positive_int, default=getattr(defaults, name))
    for name in ("warmup_steps", "workers"):
        command.add_argument("--" + name.replace("_", "-"), type=natural_int, default=getattr(defaults, name))
    command.add_argument("--seed", type=int, default=defaults.seed)
    command.add_argument("--weight-decay", type=natural_float, default=defaults.weight_decay)
    command.add_argument("--grad-clip", type=positive_float, default=defaults.grad_clip)
    command.add_argument("--lr", nargs="*", default=[], metavar="STAGE=LR",
                         help="learning rates by stage (defaults: " + "; ".join(
                             f"a {kind}'s {network.learning_rates}" for kind, network in NETWORKS.items()) + ")")
    command.add_argument("--backbone-widths", type=positive_int, nargs="+", help="inverse backbone channels per x2 step")
    command.add_argument("--encoder-layers", type=positive_int, help="inverse encoder layers (default: the detector's)")
    command.add_argument("--decoder-layers", type=positive_int, help="inverse decoder layers (default: the detector's)")
    command.add_argument("--ffn-dim", type=positive_int, help="their feed-forward width (default: the detector's)")
    command.add_argument("--prediction-hidden", type=positive_int, nargs="+", help="the inverse prediction MLP's hidden widths")
    command.add_argument("--prediction-input", choices=["onehot", "probabilities"])
    command.add_argument("--backbone-architecture", choices=["pixel_shuffle", "upconv"],
                         help="the inverse backbone (upconv: the reference's heavy decoder, for comparison)")
    command.add_argument("--precision", choices=["auto", "bf16", "no"], default=defaults.precision)
    runs = command.add_mutually_exclusive_group()
    runs.add_argument("--resume", action="store_true", help="continue the run in --out (its settings unchanged)")
    runs.add_argument("--overwrite", action="store_true", help="replace the run in --out (its files are deleted)")
    add_dataset_checks(command, categories=False)


def main(argv: list[str] | None = None) -> int:
    return dispatch(parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
