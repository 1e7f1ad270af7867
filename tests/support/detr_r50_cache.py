"""A fake Hugging Face cache entry for ``facebook/detr-resnet-50`` at commit 1d5f47bd.

Tests that exercise the *real* loading path (``DetrForObjectDetection.from_pretrained("facebook/detr-resnet-50",
revision=...)`` under ``HF_HUB_OFFLINE=1``) need the detector's files to be in the Hugging Face cache, but the Hub is
not reachable from CI. :func:`build_fake_detr_r50_cache` writes what ``huggingface_hub`` would leave on disk after
downloading ``config.json`` and ``model.safetensors`` of that commit, with:

* ``config.json``: byte for byte the real file. It is regenerated here from its fields (``json.dumps(...,
  indent=2, sort_keys=True)`` plus a newline, which is how transformers 4.7 wrote it) and checked against the real
  file's size (4,592 bytes) and SHA-256 (``e7bcf399...``), both recorded by several public projects that pin this
  commit.
* ``model.safetensors``: random weights under the real checkpoint's tensor names, shapes and dtypes (534 tensors,
  41,631,012 numbers). The names are those of the transformers 4.x module tree the checkpoint was written from
  (``model.backbone.conv_encoder.model.*`` for the timm ResNet-50, ``self_attn.out_proj``, ``fc1``/``fc2``), plus the
  four int64 ``...downsample.1.num_batches_tracked`` scalars the real file carries. Written the way the
  ``safetensors`` library writes it, with ``{"format": "pt"}`` metadata, the file is exactly as long as the real
  one (166,587,896 bytes), which is a check on every name and shape. transformers 5.x renames these names on load
  (see ``conversion_mapping.py``: ``backbone.conv_encoder`` -> ``backbone``, ``out_proj`` -> ``o_proj``,
  ``layers.N.fc1`` -> ``layers.N.mlp.fc1``).

The weights are streamed to disk one tensor at a time, so building the cache needs only a few MB of memory beyond the
largest tensor (about 9 MB), not the 166 MB of the whole checkpoint. Only the standard library and numpy are needed
to *write* the cache; loading it needs torch, transformers and timm.

Cache layout (huggingface_hub 2.4, ``file_download._hf_hub_download_to_cache_dir``)::

    <cache_dir>/
      CACHEDIR.TAG                                  # written by huggingface_hub on every download
      .locks/models--facebook--detr-resnet-50/      # lock files are removed after use; the folder stays
      models--facebook--detr-resnet-50/
        blobs/<git-sha1 of config.json>             # regular git file: blob named by its ETag = git blob id
        blobs/<sha256 of model.safetensors>         # LFS/Xet file: blob named by its ETag = sha256 of the content
        refs/main                                   # the commit hash, no newline (only if downloaded via a branch)
        snapshots/1d5f47bd.../config.json        -> ../../blobs/<git-sha1>
        snapshots/1d5f47bd.../model.safetensors  -> ../../blobs/<sha256>

Loading by commit hash needs only ``snapshots/<commit>/<file>`` (hf_hub_download returns the pointer path without any
lookup). ``refs/main`` is what lets ``revision="main"`` (or no revision) resolve offline. ``trees/<commit>.json`` is
written only by a networked ``snapshot_download``; it lists *every* file of the repo, and an offline
``snapshot_download`` then refuses (``IncompleteSnapshotError``) if a file matching its ``allow_patterns`` is missing,
so it is off by default here (see ``with_tree_cache``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO_ID = "facebook/detr-resnet-50"
COMMIT = "1d5f47bd3bdd2c4bbfa585418ffe6da5028b4c0b"
REPO_FOLDER = "models--facebook--detr-resnet-50"

# Facts about the real files at COMMIT (sizes and SHA-256 as published by projects pinning this commit).
REAL_CONFIG_SIZE = 4_592
REAL_CONFIG_SHA256 = "e7bcf3992363f27717a863f14b193140ad2e41d4338ee012730e58a92cae17e6"
REAL_WEIGHTS_SIZE = 166_587_896
REAL_WEIGHTS_SHA256 = "830f5e2eeaada8c8c8281779dcc8ab12833972eb8514ed0a35be6c1d4420ad81"  # the fake differs
REAL_NUM_TENSORS = 534

# The 91 COCO category slots DETR predicts (ids 0..90, "N/A" for ids unused by COCO 2017); the model adds a 92nd
# "no object" logit on top (class_labels_classifier has 92 rows).
COCO91_LABELS = [
    "N/A", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "street sign", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "hat", "backpack", "umbrella", "shoe",
    "eye glasses", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "plate", "wine glass",
    "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot",
    "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "mirror", "dining table",
    "window", "desk", "toilet", "door", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave",
    "oven", "toaster", "sink", "refrigerator", "blender", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
]  # fmt: skip

D_MODEL = 256
FFN_DIM = 2048
NUM_QUERIES = 100
ENCODER_LAYERS = 6
DECODER_LAYERS = 6
RESNET50_BLOCKS = (3, 4, 6, 3)  # bottleneck blocks in layer1..layer4
RESNET50_WIDTHS = (64, 128, 256, 512)  # bottleneck inner width; output is 4x


def detr_r50_config() -> dict:
    """The fields of the real config.json. Note what it does *not* contain: no ``use_timm_backbone``,
    ``use_pretrained_backbone``, ``num_channels`` or ``backbone_config``; the defaults apply (timm backbone)."""
    return {
        "activation_dropout": 0.0,
        "activation_function": "relu",
        "architectures": ["DetrForObjectDetection"],
        "attention_dropout": 0.0,
        "auxiliary_loss": False,
        "backbone": "resnet50",
        "bbox_cost": 5,
        "bbox_loss_coefficient": 5,
        "class_cost": 1,
        "classifier_dropout": 0.0,
        "d_model": D_MODEL,
        "decoder_attention_heads": 8,
        "decoder_ffn_dim": FFN_DIM,
        "decoder_layerdrop": 0.0,
        "decoder_layers": DECODER_LAYERS,
        "dice_loss_coefficient": 1,
        "dilation": False,
        "dropout": 0.1,
        "encoder_attention_heads": 8,
        "encoder_ffn_dim": FFN_DIM,
        "encoder_layerdrop": 0.0,
        "encoder_layers": ENCODER_LAYERS,
        "eos_coefficient": 0.1,
        "giou_cost": 2,
        "giou_loss_coefficient": 2,
        "id2label": {str(i): name for i, name in enumerate(COCO91_LABELS)},
        "init_std": 0.02,
        "init_xavier_std": 1.0,
        "is_encoder_decoder": True,
        "label2id": {name: i for i, name in enumerate(COCO91_LABELS)},
        "mask_loss_coefficient": 1,
        "max_position_embeddings": 1024,
        "model_type": "detr",
        "num_hidden_layers": 6,
        "num_queries": NUM_QUERIES,
        "position_embedding_type": "sine",
        "scale_embedding": False,
        "transformers_version": "4.7.0.dev0",
    }


def detr_r50_config_bytes() -> bytes:
    """config.json exactly as stored on the Hub (sorted keys, 2-space indent, trailing newline)."""
    data = (json.dumps(detr_r50_config(), indent=2, sort_keys=True) + "\n").encode("utf-8")
    assert len(data) == REAL_CONFIG_SIZE and hashlib.sha256(data).hexdigest() == REAL_CONFIG_SHA256, (
        "regenerated config.json differs from the real file"
    )
    return data


# --------------------------------------------------------------------------------------------- tensor names


def checkpoint_tensor_specs() -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, safetensors dtype) of every tensor in the real model.safetensors, derived from the
    architecture (not from transformers) so a test built on it checks transformers' name mapping."""
    specs: list[tuple[str, tuple[int, ...], str]] = []

    def add(name: str, shape: tuple[int, ...], dtype: str = "F32") -> None:
        specs.append((name, shape, dtype))

    def frozen_bn(prefix: str, channels: int) -> None:
        # DetrFrozenBatchNorm2d: weight, bias, running_mean, running_var (all buffers, all stored)
        for field in ("weight", "bias", "running_mean", "running_var"):
            add(f"{prefix}.{field}", (channels,))

    # timm ResNet-50 (features_only, out_indices 1..4), as wrapped by transformers 4.x: DetrModel.backbone
    # (DetrConvModel) .conv_encoder (DetrConvEncoder) .model (the timm FeatureListNet).
    bb = "model.backbone.conv_encoder.model"
    add(f"{bb}.conv1.weight", (64, 3, 7, 7))
    frozen_bn(f"{bb}.bn1", 64)
    in_ch = 64
    for layer_idx, (blocks, width) in enumerate(zip(RESNET50_BLOCKS, RESNET50_WIDTHS, strict=True), start=1):
        out_ch = width * 4
        for b in range(blocks):
            p = f"{bb}.layer{layer_idx}.{b}"
            add(f"{p}.conv1.weight", (width, in_ch, 1, 1))
            frozen_bn(f"{p}.bn1", width)
            add(f"{p}.conv2.weight", (width, width, 3, 3))
            frozen_bn(f"{p}.bn2", width)
            add(f"{p}.conv3.weight", (out_ch, width, 1, 1))
            frozen_bn(f"{p}.bn3", out_ch)
            if b == 0:  # projection shortcut
                add(f"{p}.downsample.0.weight", (out_ch, in_ch, 1, 1))
                frozen_bn(f"{p}.downsample.1", out_ch)
                # The real file also keeps the BatchNorm step counter of these four layers (int64 scalar).
                # transformers 5.23 reports them as "unexpected" (harmless) when loading DetrForObjectDetection.
                add(f"{p}.downsample.1.num_batches_tracked", (), "I64")
            in_ch = out_ch

    # The sine position embedding has no parameters.
    add("model.input_projection.weight", (D_MODEL, 2048, 1, 1))
    add("model.input_projection.bias", (D_MODEL,))
    add("model.query_position_embeddings.weight", (NUM_QUERIES, D_MODEL))

    def attention(prefix: str) -> None:
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            add(f"{prefix}.{proj}.weight", (D_MODEL, D_MODEL))
            add(f"{prefix}.{proj}.bias", (D_MODEL,))

    def layer_norm(prefix: str) -> None:
        add(f"{prefix}.weight", (D_MODEL,))
        add(f"{prefix}.bias", (D_MODEL,))

    def ffn(prefix: str) -> None:
        add(f"{prefix}.fc1.weight", (FFN_DIM, D_MODEL))
        add(f"{prefix}.fc1.bias", (FFN_DIM,))
        add(f"{prefix}.fc2.weight", (D_MODEL, FFN_DIM))
        add(f"{prefix}.fc2.bias", (D_MODEL,))

    for i in range(ENCODER_LAYERS):
        p = f"model.encoder.layers.{i}"
        attention(f"{p}.self_attn")
        layer_norm(f"{p}.self_attn_layer_norm")
        ffn(p)
        layer_norm(f"{p}.final_layer_norm")
    for i in range(DECODER_LAYERS):
        p = f"model.decoder.layers.{i}"
        attention(f"{p}.self_attn")
        layer_norm(f"{p}.self_attn_layer_norm")
        attention(f"{p}.encoder_attn")
        layer_norm(f"{p}.encoder_attn_layer_norm")
        ffn(p)
        layer_norm(f"{p}.final_layer_norm")
    layer_norm("model.decoder.layernorm")

    add("class_labels_classifier.weight", (len(COCO91_LABELS) + 1, D_MODEL))  # 91 labels + "no object"
    add("class_labels_classifier.bias", (len(COCO91_LABELS) + 1,))
    for j, out_dim in enumerate((D_MODEL, D_MODEL, 4)):  # box MLP: 256 -> 256 -> 256 -> 4
        add(f"bbox_predictor.layers.{j}.weight", (out_dim, D_MODEL))
        add(f"bbox_predictor.layers.{j}.bias", (out_dim,))

    assert len(specs) == REAL_NUM_TENSORS, len(specs)
    return specs


# --------------------------------------------------------------------------------------------- random values

_NUMPY_DTYPES = {"F32": np.dtype("<f4"), "I64": np.dtype("<i8")}


def _random_tensor(name: str, shape: tuple[int, ...], dtype: str, rng: np.random.Generator) -> np.ndarray:
    """Random but well-behaved values: the forward pass stays finite, nothing is all-zero."""
    if dtype == "I64":  # num_batches_tracked
        return np.zeros(shape, dtype=_NUMPY_DTYPES[dtype])
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "running_var":
        values = 1.0 + 0.1 * rng.random(shape)
    elif leaf == "running_mean":
        values = 0.01 * rng.standard_normal(shape)
    elif len(shape) == 1 and ("bn" in name or "downsample.1" in name or "norm" in name) and leaf == "weight":
        values = 1.0 + 0.01 * rng.standard_normal(shape)  # BatchNorm / LayerNorm scale
    elif len(shape) == 1:
        values = 0.01 * rng.standard_normal(shape)  # biases
    else:
        fan_in = int(np.prod(shape[1:]))
        values = rng.standard_normal(shape) / np.sqrt(fan_in)  # keeps activations O(1) through 50 layers
    return values.astype(_NUMPY_DTYPES[dtype])


# --------------------------------------------------------------------------------------------- safetensors


def _safetensors_layout(specs: list[tuple[str, tuple[int, ...], str]]) -> tuple[bytes, list[tuple[str, int, int]]]:
    """Header bytes and (name, start, end) in data order, laid out as the safetensors library does it:
    tensors ordered by decreasing dtype alignment then name, a JSON header with ``__metadata__`` first and the
    tensors in data order, padded with spaces to a multiple of 8 bytes."""
    itemsize = {"F32": 4, "I64": 8}
    ordered = sorted(specs, key=lambda s: (-itemsize[s[2]], s[0]))
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offsets: list[tuple[str, int, int]] = []
    pos = 0
    for name, shape, dtype in ordered:
        nbytes = int(np.prod(shape, dtype=np.int64)) * itemsize[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [pos, pos + nbytes]}
        offsets.append((name, pos, pos + nbytes))
        pos += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return raw, offsets


def _iter_chunks(specs, seed: int) -> Iterator[bytes]:
    header, order = _safetensors_layout(specs)
    yield struct.pack("<Q", len(header))
    yield header
    by_name = {name: (shape, dtype) for name, shape, dtype in specs}
    rng = np.random.default_rng(seed)
    for name, start, end in order:
        shape, dtype = by_name[name]
        data = _random_tensor(name, shape, dtype, rng).tobytes()
        assert len(data) == end - start
        yield data


def write_fake_detr_r50_safetensors(path: Path, *, seed: int = 0) -> str:
    """Stream the fake checkpoint to ``path``; return its sha256 (the blob name huggingface_hub would use)."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for chunk in _iter_chunks(checkpoint_tensor_specs(), seed):
            f.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------- the cache

_CACHEDIR_TAG = (  # the content huggingface_hub writes (huggingface_hub/_local_folder.py, CACHEDIR_TAG_CONTENT)
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by huggingface_hub.\n"
    "# For information about cache directory tags, see:\n"
    "#\thttps://bford.info/cachedir/\n"
)


def _git_blob_sha1(data: bytes) -> str:
    """The id git gives a blob; the Hub's ETag for a regular (non-LFS) file, hence its blob name in the cache."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _link(blob: Path, pointer: Path) -> None:
    """Relative symlink like huggingface_hub's _create_symlink; a copy where symlinks are not supported."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    if pointer.exists() or pointer.is_symlink():
        pointer.unlink()
    try:
        os.symlink(os.path.relpath(blob, pointer.parent), pointer)
    except OSError:
        shutil.copyfile(blob, pointer)


def build_fake_detr_r50_cache(
    cache_dir: Path,
    *,
    seed: int = 0,
    refs: tuple[str, ...] = ("main",),
    with_tree_cache: bool = False,
) -> Path:
    """Write ``facebook/detr-resnet-50`` @ ``COMMIT`` (config.json + random model.safetensors) into the Hugging
    Face cache folder ``cache_dir`` (the folder HF_HUB_CACHE points at) and return the snapshot folder.

    refs: branch names to record as pointing at COMMIT (``refs/<name>``); ``()`` mimics a download made by commit
        hash (what ``preload_from_hub ... <commit>`` does), after which only commit-hash revisions resolve offline.
    with_tree_cache: also write ``trees/<COMMIT>.json`` listing just these two files, as a networked
        ``snapshot_download(allow_patterns=[...])`` would write (it would list every file of the repo).
    Takes about a second and a few MB of memory; writes ~167 MB.
    """
    cache_dir = Path(cache_dir)
    storage = cache_dir / REPO_FOLDER
    blobs = storage / "blobs"
    snapshot = storage / "snapshots" / COMMIT
    blobs.mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    (cache_dir / ".locks" / REPO_FOLDER).mkdir(parents=True, exist_ok=True)
    tag = cache_dir / "CACHEDIR.TAG"
    if not tag.exists():
        tag.write_text(_CACHEDIR_TAG)

    # config.json: a regular git file, its blob named by the git blob id.
    config = detr_r50_config_bytes()
    config_blob = blobs / _git_blob_sha1(config)
    config_blob.write_bytes(config)
    _link(config_blob, snapshot / "config.json")

    # model.safetensors: an LFS/Xet file, its blob named by the sha256 of its content (written to a temporary
    # name first, then renamed, as huggingface_hub does with its ".incomplete" files).
    incomplete = blobs / "model.safetensors.incomplete"
    weights_sha256 = write_fake_detr_r50_safetensors(incomplete, seed=seed)
    weights_blob = blobs / weights_sha256
    os.replace(incomplete, weights_blob)
    _link(weights_blob, snapshot / "model.safetensors")

    for ref in refs:
        ref_path = storage / "refs" / ref
        ref_path.parent.mkdir(parents=True, exist_ok=True)
        ref_path.write_text(COMMIT)  # no trailing newline, like huggingface_hub

    if with_tree_cache:
        files = {
            "config.json": {"size": len(config), "blob_id": _git_blob_sha1(config)},
            "model.safetensors": {
                "size": weights_blob.stat().st_size,
                "blob_id": _git_blob_sha1(b""),  # placeholder: the git id of the LFS pointer file is not used
                "lfs_sha256": weights_sha256,
                "lfs_size": weights_blob.stat().st_size,
            },
        }
        tree = storage / "trees" / f"{COMMIT}.json"
        tree.parent.mkdir(parents=True, exist_ok=True)
        tree.write_text(json.dumps({"format_version": 1, "files": files}, indent=1))

    return snapshot


if __name__ == "__main__":  # python fake_detr_r50_cache.py /tmp/hf-cache
    import sys
    import time

    t0 = time.perf_counter()
    where = build_fake_detr_r50_cache(Path(sys.argv[1] if len(sys.argv) > 1 else "fake-hf-cache"))
    print(f"wrote {where} in {time.perf_counter() - t0:.1f} s")
