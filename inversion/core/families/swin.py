"""Swin Transformer (Liu et al. 2021): windowed attention on a hierarchy of patch grids.

A p x p convolution embeds each patch, a layer norm follows (and an absolute position embedding when the
config has one): the embedding stage, B x C x h x w (transformers' `hidden_states[0]`). Then S stages; stage s
runs its blocks at width C * 2^s on the grid halved s times (windows of w x w, every second block shifted by
w / 2), and every stage but the last ends with a patch merging (each 2 x 2 neighbourhood concatenated, layer
normed, linearly mapped to twice the width). The encoder's entries are the embedding, then every block's
output of every stage, each merging's output after its stage's blocks; transformers returns only each stage's
merged output (`hidden_states`) and, with `output_hidden_states_before_downsampling`, its last block's, so the
blocks are read by forward hooks. The head reads the average over the final tokens after a layer norm
(the pooled stage, B x 1 x C_S). A level of the inverse is a stage: from its merged output (or last block)
back to its input.
"""

from __future__ import annotations

from transformers import SwinForImageClassification

from .classifier_base import ClassifierFamily, ClassifierForward, Level, _recorded_outputs


class Swin(ClassifierFamily):
    name = "Swin"
    model_types = ("swin",)
    records_attention = False  # windowed, each stage's last block only in transformers' outputs

    def model_class(self, config):
        return SwinForImageClassification

    def levels(self, config) -> list[Level]:
        levels, start = [], 0
        height, width = self.grid(config)
        for stage, depth in enumerate(config.depths):
            merged = stage < len(config.depths) - 1
            blocks = tuple(range(start + 1, start + depth + 1))
            end = start + depth + int(merged)
            levels.append(Level(start, end, blocks, config.embed_dim * 2**stage, (height, width), config.num_heads[stage], merged))
            height, width = (height + 1) // 2, (width + 1) // 2
            start = end
        return levels

    def patch_projection(self, model):
        return model.base_model.embeddings.patch_embeddings.projection

    def embedding_module(self, model):
        return model.base_model.embeddings

    def stage_modules(self, model):
        return list(model.base_model.encoder.layers)

    def blocks(self, model):
        return [block for stage in self.stage_modules(model) for block in stage.blocks]

    def embedding_replacement(self, config, output, embedding):
        return embedding.flatten(2).transpose(1, 2), output[1]

    def run(self, model, inputs, attention):
        # Swin returns windowed attention of each stage's last block only: the blocks' attention is not recorded.
        modules = [module for stage in self.stage_modules(model)
                   for module in (*stage.blocks, *([stage.downsample] if stage.downsample is not None else []))]
        with _recorded_outputs([*modules, model.base_model.pooler]) as recorded:
            output = model(pixel_values=inputs, output_hidden_states=True)
        *entries, pooled = [output[0] if isinstance(output, tuple) else output for output in recorded]
        return output, {"entries": entries, "pooled": pooled}

    def stages(self, model, output, recorded, attention) -> ClassifierForward:
        encoder = [output.hidden_states[0], *recorded["entries"]]
        return ClassifierForward(self.embedding_map(model.config, encoder[0]), encoder,
                                 recorded["pooled"].flatten(1)[:, None], output.logits)
