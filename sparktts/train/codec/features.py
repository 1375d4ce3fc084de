"""The wav2vec2 feature stage as training sees it: a differentiable ``(B, N) -> (B, T, D)`` module.

Inference runs :class:`sparktts.codec.wav2vec2.Wav2Vec2Features` on numpy clips; training needs the
same computation on batched tensors (frozen, or trained jointly with the codec). Like the inference
loader, only the 16 layers whose hidden states are mixed are built, and the final LayerNorm is skipped
(``hidden_states[16]`` of the released 24-layer model is the raw output of layer 16).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from ...codec.tokenizer import W2V_DIR
from ...codec.wav2vec2 import MIX_LAYERS, Wav2Vec2Features
from ...errors import ConfigError
from .config import FeatureModelConfig


def small_wav2vec2_config(cfg: FeatureModelConfig):
    """A ``Wav2Vec2Config`` with the release's structure (conv stack, 50 Hz, stable LayerNorm), small dims.

    No dropout, layer drop or time masking: those make some parameters unused in a step, which DDP
    refuses, and they are not needed for a feature stage trained through a codec.
    """
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(
        hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads, intermediate_size=cfg.intermediate_size,
        conv_dim=[cfg.conv_dim] * 7, conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_stride=[5, 2, 2, 2, 2, 2, 2],
        feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True, num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16, feat_extract_activation="gelu", hidden_act="gelu",
        hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
        final_dropout=0.0, layerdrop=0.0, mask_time_prob=0.0, mask_feature_prob=0.0,
        architectures=["Wav2Vec2Model"],
    )


def pretrained_dir(path: str) -> Path:
    """A release directory or its ``wav2vec2-large-xlsr-53/`` folder -> that folder."""
    root = Path(path).expanduser()
    for cand in (root / W2V_DIR, root):
        if (cand / "config.json").is_file():
            return cand
    raise ConfigError(f"wav2vec2.pretrained: {root} holds no wav2vec2 model (config.json); give a release "
                      f"directory or its {W2V_DIR}/ folder.")


class FeatureStage(nn.Module):
    """``(B, N)`` float 16 kHz -> ``(B, T, D)``: mean of hidden states 11, 14, 16, T = frames of N.

    The input is normalised per row to zero mean and unit variance (eps 1e-7), as the release's
    ``Wav2Vec2FeatureExtractor`` does.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        if len(model.encoder.layers) != max(MIX_LAYERS):
            raise ConfigError(f"wav2vec2.num_hidden_layers: the feature stage mixes hidden states {MIX_LAYERS}, "
                              f"so it needs exactly {max(MIX_LAYERS)} layers, not {len(model.encoder.layers)}.")
        if model.config.do_stable_layer_norm:
            # As the inference loader: with stable LayerNorm the final norm follows the last layer, and
            # hidden state 16 of the released model is taken before it.
            model.encoder.layer_norm = nn.Identity()
        kernels, strides = model.config.conv_kernel, model.config.conv_stride
        field, hop = 1, 1
        for k, s in zip(kernels, strides):
            field += (k - 1) * hop
            hop *= s
        self.hop, self.field = hop, field

    @classmethod
    def build(cls, cfg: FeatureModelConfig) -> FeatureStage:
        if cfg.pretrained is not None:
            stage = cls(Wav2Vec2Features(pretrained_dir(cfg.pretrained)).model)
        else:
            from transformers import Wav2Vec2Model

            stage = cls(Wav2Vec2Model(small_wav2vec2_config(cfg)))
        stage.requires_grad_(cfg.trainable)
        return stage.train(cfg.trainable)

    def aligned_input(self, wav: Tensor) -> Tensor:
        """Pad ``(B, N)`` on the right by ``field - hop`` samples so that T = N / hop frames cover it."""
        return torch.nn.functional.pad(wav, (0, self.field - self.hop))

    def forward(self, wav: Tensor) -> Tensor:
        x = wav.float()
        x = (x - x.mean(dim=-1, keepdim=True)) / torch.sqrt(x.var(dim=-1, keepdim=True, unbiased=False) + 1e-7)
        hidden = self.model(x, output_hidden_states=True).hidden_states
        return sum(hidden[i] for i in MIX_LAYERS) / len(MIX_LAYERS)
