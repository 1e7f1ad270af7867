"""The model family of the study: an encoder, a decoder and a classification head sharing one latent.

    image -> encoder -> latent z -> decoder    -> reconstruction (sigmoid, [0, 1])
                                 -> classifier -> class logits

Architectures (the encoder and decoder vary; the head is the same MLP, latent -> 64 -> classes):
    fc-s   fully connected, one hidden layer of 64
    fc-m   fully connected, hidden 256, 64
    fc-l   fully connected, hidden 512, 256, 128
    cnn    two (8x8 inputs: one) stride-2 convolutions and a linear map to z; mirrored decoder
    vit    a small ViT (d 32, 2 layers, 4 heads, 2x2 or 4x4 patches) averaged over tokens into z;
           decoder: z linearly to one token per patch, 1 transformer layer, tokens to pixels
    vit-cls  the same ViT with a CLS token put first: z is the CLS token (normed, mapped to the latent size), as
           a ViT classifier's head reads it; classification and reconstruction from one token
Any image shape works: digits (1x8x8), MNIST (1x28x28), CIFAR-10 (3x32x32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

ARCHITECTURES = ("fc-s", "fc-m", "fc-l", "cnn", "vit", "vit-cls")
FC_HIDDEN = {"fc-s": (64,), "fc-m": (256, 64), "fc-l": (512, 256, 128)}
HEAD_HIDDEN = 64


@dataclass
class ModelConfig:
    arch: str = "fc-m"
    latent: int = 8
    image_shape: tuple[int, int, int] = (1, 8, 8)  # C x H x W
    classes: int = 10


class TradeoffModel(nn.Module):
    """Encoder, decoder and classification head; how they learn is decided by the loss (train.py)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {config.arch!r}; choose one of {', '.join(ARCHITECTURES)}.")
        self.config = config
        builder = {"cnn": conv_autoencoder, "vit": vit_autoencoder, "vit-cls": vit_autoencoder}.get(config.arch, fc_autoencoder)
        self.encoder, self.decoder = builder(config)
        self.classifier = nn.Sequential(
            nn.Linear(config.latent, HEAD_HIDDEN), nn.ReLU(), nn.Linear(HEAD_HIDDEN, config.classes)
        )

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(latent, reconstruction, logits), with ordinary gradients everywhere."""
        z = self.encoder(images)
        return z, self.decoder(z), self.classifier(z)

    def parameter_counts(self) -> dict[str, int]:
        return {name: sum(p.numel() for p in getattr(self, name).parameters())
                for name in ("encoder", "decoder", "classifier")}


def mlp(sizes: list[int]) -> list[nn.Module]:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for index, (size_in, size_out) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(size_in, size_out))
        if index < len(sizes) - 2:
            layers.append(nn.ReLU())
    return layers


def fc_autoencoder(config: ModelConfig) -> tuple[nn.Module, nn.Module]:
    pixels = math.prod(config.image_shape)
    sizes = [pixels, *FC_HIDDEN[config.arch], config.latent]
    encoder = nn.Sequential(nn.Flatten(), *mlp(sizes))
    decoder = nn.Sequential(*mlp(sizes[::-1]), nn.Sigmoid(), nn.Unflatten(1, config.image_shape))
    return encoder, decoder


def conv_autoencoder(config: ModelConfig, width: int = 32) -> tuple[nn.Module, nn.Module]:
    channels, height, width_px = config.image_shape
    downs = 1 if height <= 8 else 2
    if height % 2**downs or width_px % 2**downs:
        raise ValueError(f"cnn needs image sides divisible by {2**downs}, got {height}x{width_px}.")
    small = (2 * width, height // 2**downs, width_px // 2**downs)
    encoder = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
    for index in range(downs):
        encoder += [nn.Conv2d(width if index == 0 else 2 * width, 2 * width, 3, stride=2, padding=1), nn.ReLU()]
    encoder += [nn.Flatten(), nn.Linear(math.prod(small), config.latent)]
    decoder = [nn.Linear(config.latent, math.prod(small)), nn.ReLU(), nn.Unflatten(1, small)]
    for index in range(downs):
        out = width if index == downs - 1 else 2 * width
        decoder += [nn.ConvTranspose2d(2 * width, out, 4, stride=2, padding=1), nn.ReLU()]
    decoder += [nn.Conv2d(width, channels, 3, padding=1), nn.Sigmoid()]
    return nn.Sequential(*encoder), nn.Sequential(*decoder)


def transformer(dim: int, layers: int, heads: int = 4) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class Patches(nn.Module):
    """Images <-> sequences of flattened p x p patches."""

    def __init__(self, image_shape: tuple[int, int, int], patch: int):
        super().__init__()
        self.image_shape, self.patch = image_shape, patch
        channels, height, width = image_shape
        self.count, self.size = (height // patch) * (width // patch), channels * patch * patch

    def split(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.unfold(images, self.patch, stride=self.patch).transpose(1, 2)

    def join(self, patches: torch.Tensor) -> torch.Tensor:
        size = self.image_shape[1:]
        return nn.functional.fold(patches.transpose(1, 2), size, self.patch, stride=self.patch)


class VitEncoder(nn.Module):
    """Patch embedding + learned positions -> transformer -> mean over tokens (or, with `cls_token`, the CLS
    token put first) -> z."""

    def __init__(self, patches: Patches, latent: int, dim: int, layers: int, cls_token: bool = False):
        super().__init__()
        self.patches = patches
        self.embed = nn.Linear(patches.size, dim)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02) if cls_token else None
        self.position = nn.Parameter(torch.randn(1, patches.count + int(cls_token), dim) * 0.02)
        self.blocks = transformer(dim, layers)
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, latent))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(self.patches.split(images))
        if self.cls is None:
            return self.out(self.blocks(tokens + self.position).mean(1))
        tokens = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], dim=1) + self.position
        return self.out(self.blocks(tokens)[:, 0])


class VitDecoder(nn.Module):
    """z -> one token per patch (a linear map, plus learned positions) -> transformer -> patches."""

    def __init__(self, patches: Patches, latent: int, dim: int, layers: int):
        super().__init__()
        self.patches, self.dim = patches, dim
        self.embed = nn.Linear(latent, patches.count * dim)
        self.position = nn.Parameter(torch.randn(1, patches.count, dim) * 0.02)
        self.blocks = transformer(dim, layers)
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, patches.size))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(z).view(len(z), self.patches.count, self.dim) + self.position
        return torch.sigmoid(self.patches.join(self.out(self.blocks(tokens))))


def vit_autoencoder(config: ModelConfig, dim: int = 32, layers: int = 2) -> tuple[nn.Module, nn.Module]:
    height, width = config.image_shape[1:]
    patch = 2 if height <= 8 else 4
    if height % patch or width % patch:
        raise ValueError(f"vit needs image sides divisible by {patch}, got {height}x{width}.")
    patches = Patches(config.image_shape, patch)
    encoder = VitEncoder(patches, config.latent, dim, layers, cls_token=config.arch == "vit-cls")
    return encoder, VitDecoder(patches, config.latent, dim, max(1, layers // 2))
