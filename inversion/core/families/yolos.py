"""YOLOS (Fang et al. 2021): a plain ViT that detects, with no CNN and no decoder.

The image is cut into patches, each linearly embedded (the backbone stage: the patch embedding as a
B x d x h x w map, before positions); a [CLS] token and Q learned detection tokens join the h x w
patch tokens, positions are added, and ViT layers run on all of them together; the heads read the
detection tokens after the final layer norm (softmax classes with "no object", as DETR). The encoder
stage is the patch tokens of every layer (entry 0 with their positions); the decoder stage is the
detection tokens of the same layers (entry L after the final norm): YOLOS has no decoder of its own,
its detection tokens travel with the patches, so its decoder layers are its encoder layers and cannot be
skipped apart from them, and no encoder output is read by a decoder (no transplant at the encoder).
Attention is the ViT's self-attention: patch to patch for the encoder, detection token to patch for
the decoder. The model takes no pixel mask: padding is seen as the normalised zero image.
"""

from __future__ import annotations

from transformers import YolosForObjectDetection

from ..errors import UserFacingError
from .base import Changes, Family, Sizes


class Yolos(Family):
    name = "YOLOS"
    model_types = ("yolos",)
    model_class = YolosForObjectDetection
    width_attribute = "hidden_size"

    def sizes(self, config) -> Sizes:
        return Sizes(d_model=config.hidden_size, num_queries=config.num_detection_tokens, num_logits=config.num_labels + 1,
                     encoder_layers=config.num_hidden_layers, decoder_layers=config.num_hidden_layers,
                     attention_heads=config.num_attention_heads, ffn_dim=config.intermediate_size)

    def level_modules(self, model):
        return [model.vit.embeddings.patch_embeddings]

    def level_map(self, model, output, pixels):
        patch = model.config.patch_size
        return output.transpose(1, 2).reshape(len(output), -1, pixels.shape[-2] // patch, pixels.shape[-1] // patch)

    def level_output(self, level_map):
        return level_map.flatten(2).transpose(1, 2)

    def model_inputs(self, pixels, pixel_mask):
        return {"pixel_values": self.normalise(pixels)}

    def backbone_levels(self, model, pixels, pixel_mask):
        return [self.level_map(model, self.level_modules(model)[0](self.normalise(pixels)), pixels)]

    def encoder_module(self, model):
        return model.vit.encoder

    def encoder_layers(self, model):
        return model.vit.encoder.layer

    def decoder_layers(self, model):
        return []

    def encoder_states(self, model, output, levels, recorded):
        patches = self._patches(output)
        return [state[:, 1:1 + patches] for state in output.hidden_states]

    def decoder_states(self, model, output):
        queries = model.config.num_detection_tokens
        return [state[:, -queries:] for state in output.hidden_states[:-1]] + [output.last_hidden_state[:, -queries:]]

    def attention_maps(self, output, levels, level, recorded):
        patches = self._patches(output)
        queries = output.logits.shape[1]
        encoder = {number: weights[:, :, 1:1 + patches, 1:1 + patches] for number, weights in enumerate(output.attentions, 1)}
        cross = {number: weights[:, :, -queries:, 1:1 + patches] for number, weights in enumerate(output.attentions, 1)}
        return encoder, cross

    def forward(self, model, pixels, pixel_mask, changes: Changes = Changes(), attention: bool = False):
        if changes.memory is not None:
            raise UserFacingError("YOLOS has no decoder reading an encoder output, so nothing can run from a changed "
                                  "encoder output: change the backbone stage (the patch embedding) instead.")
        if changes.skip_decoder:
            raise UserFacingError("YOLOS has no decoder layers of its own (its detection tokens pass through the "
                                  "encoder's layers): skip an encoder layer instead.")
        forward = super().forward(model, pixels, pixel_mask, changes, attention)
        # attention of skipped layers was dropped for the encoder; the same layers carry the detection tokens
        forward.cross_attention = {number: weights for number, weights in forward.cross_attention.items()
                                   if number not in changes.skip_encoder}
        return forward

    @staticmethod
    def _patches(output) -> int:
        """The number of patch tokens: all but [CLS] and the detection tokens."""
        return output.hidden_states[0].shape[1] - 1 - output.logits.shape[1]
