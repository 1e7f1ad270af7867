"""ViT (Dosovitskiy et al. 2021) and DeiT (Touvron et al. 2021): a plain transformer on patch tokens.

ViT: a p x p convolution with stride p embeds each patch; a CLS token is put first and a learned position
embedding added (the embedding stage: transformers' `hidden_states[0]`, whose patch tokens as a map are the
B x d x h x w embedding map); L pre-norm blocks at one width (entries 1..L: `hidden_states[1..L]`, before
the final layer norm); the head reads the CLS token after that norm (the pooled stage, B x 1 x d).

DeiT adds a distillation token after the CLS token (two special tokens). Its distilled checkpoints
(`DeiTForImageClassificationWithTeacher`) read both: the logits are the mean of a CLS head and a
distillation head, and the pooled stage holds both tokens (B x 2 x d); a plain `DeiTForImageClassification`
reads the CLS token only. DeiT checkpoints without a distillation token (facebook/deit-*-patch16-224) are
ViTs (`model_type` "vit") and load as such.
"""

from __future__ import annotations

import torch
from transformers import (
    DeiTForImageClassification,
    DeiTForImageClassificationWithTeacher,
    ViTForImageClassification,
)

from .classifier_base import ClassifierFamily, ClassifierForward, Level, _recorded_outputs


class Vit(ClassifierFamily):
    name = "ViT"
    model_types = ("vit",)
    pixel_mean = (0.5, 0.5, 0.5)  # google/vit-*'s preprocessing
    pixel_std = (0.5, 0.5, 0.5)

    def model_class(self, config):
        return ViTForImageClassification

    def special_tokens(self, config) -> int:
        return 1

    def levels(self, config) -> list[Level]:
        layers = config.num_hidden_layers
        return [Level(0, layers, tuple(range(1, layers + 1)), config.hidden_size, self.grid(config), config.num_attention_heads)]

    def patch_projection(self, model):
        return model.base_model.embeddings.patch_embeddings.projection

    def embedding_module(self, model):
        return model.base_model.embeddings

    def blocks(self, model):
        return list(model.base_model.layers)

    def embedding_replacement(self, config, output, embedding):
        tokens = embedding.flatten(2).transpose(1, 2)
        return torch.cat([output[:, : self.special_tokens(config)], tokens], dim=1)

    def run(self, model, inputs, attention):
        with _recorded_outputs([model.base_model.layernorm]) as normed:
            output = model(pixel_values=inputs, output_hidden_states=True, output_attentions=attention)
        return output, {"normed": normed[0]}

    def stages(self, model, output, recorded, attention) -> ClassifierForward:
        config = model.config
        encoder = list(output.hidden_states)
        attentions = dict(enumerate(output.attentions, start=1)) if attention else {}
        return ClassifierForward(self.embedding_map(config, encoder[0]), encoder,
                                 recorded["normed"][:, : self.pooled_tokens(config)], output.logits, attentions,
                                 recorded["normed"])


class Deit(Vit):
    name = "DeiT"
    model_types = ("deit",)
    pixel_mean = ClassifierFamily.pixel_mean  # ImageNet's
    pixel_std = ClassifierFamily.pixel_std

    def model_class(self, config):
        if "DeiTForImageClassification" in (config.architectures or ()):
            return DeiTForImageClassification
        return DeiTForImageClassificationWithTeacher  # the distilled checkpoints' class

    def special_tokens(self, config) -> int:
        return 2

    def pooled_tokens(self, config) -> int:
        return 2 if self.model_class(config) is DeiTForImageClassificationWithTeacher else 1
