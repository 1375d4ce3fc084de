"""What the codec trainer optimises: a trainable BiCodec (random init or a release) and the generator side.

``build_codec`` gives a BiCodec with weight norm parametrised (the released ``weight_g``/``weight_v``
are what trains); ``CodecTrainModel`` joins it with the wav2vec2 feature stage when that is trained
jointly. The exporter builds the same modules to load a checkpoint into.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ...checkpoint import read_state_dict
from ...codec.bicodec import BiCodec, CodecOutput
from ...codec.layers import add_weight_norm, load_weight_norm_pairs
from ...codec.vocos import VocosBackbone
from ...errors import CheckpointError
from .config import CodecTrainConfig
from .features import FeatureStage
from .pitch import PitchHead


@dataclass
class TrainOutput(CodecOutput):
    """:class:`CodecOutput` plus what only training computes: ``pitch`` ``(B, 2, T)``, the pitch head's
    prediction from ``z_q`` (None without ``loss.pitch``)."""

    pitch: Tensor | None = None


class CodecTrainModel(nn.Module):
    """The generator side: BiCodec, plus the wav2vec2 feature stage when it is trained jointly.

    ``forward(wav (B, N), ref_wav (B, L), use_speaker, feats (B, T, D) or None)`` -> :class:`TrainOutput`
    with ``wav`` ``(B, 1, N)`` (N a multiple of the hop). ``feats`` comes from a frozen stage outside;
    without it the joint stage computes it. ``pitch``: the training-only head of ``loss.pitch``
    (:mod:`.pitch`), never exported. It runs inside ``forward`` so that a DDP-wrapped model all-reduces
    its gradients with the rest.
    """

    def __init__(self, codec: BiCodec, features: FeatureStage | None = None, pitch: PitchHead | None = None):
        super().__init__()
        self.codec = codec
        self.features = features
        self.pitch = pitch

    @classmethod
    def build(cls, cfg: CodecTrainConfig, codec: BiCodec, features: FeatureStage | None) -> CodecTrainModel:
        """The modules a run of ``cfg`` trains (and its checkpoints hold)."""
        head = PitchHead(cfg.bicodec().quantizer.input_dim) if cfg.loss.pitch > 0 else None
        return cls(codec, features, head)

    def forward(self, wav: Tensor, ref_wav: Tensor, use_speaker: bool = True, feats: Tensor | None = None
                ) -> TrainOutput:
        if feats is None:
            feats = self.features(self.features.aligned_input(wav))
        out = self.codec(feats, ref_wav, use_speaker=use_speaker)
        return TrainOutput(**vars(out), pitch=None if self.pitch is None else self.pitch(out.z_q))


def initialise(codec: BiCodec) -> BiCodec:
    """Initialisation for training from scratch, as vocos and DAC do it (the speaker encoder keeps torch's).

    ConvNeXt backbones (encoder, prenet, postnet): conv and linear weights from a truncated normal
    (std 0.02), zero biases, layer scale ``1 / num_layers`` (so a deep residual stack starts near the
    identity); the wave generator: the same for its convolutions.
    """
    def normal_(module: nn.Module, types: tuple[type, ...]) -> None:
        for m in module.modules():
            if isinstance(m, types):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    with torch.no_grad():
        for part in (codec.encoder, codec.prenet, codec.postnet):
            normal_(part, (nn.Conv1d, nn.Linear))
            for backbone in part.modules():
                if isinstance(backbone, VocosBackbone):
                    for block in backbone.convnext:
                        block.gamma.fill_(1.0 / len(backbone.convnext))
        normal_(codec.decoder, (nn.Conv1d,))
    return codec


def build_codec(cfg: CodecTrainConfig, init: str | os.PathLike | None = None) -> BiCodec:
    """A trainable BiCodec: random weights (seeded) or a release's ``BiCodec/``, weight norm parametrised."""
    codec = BiCodec(cfg.bicodec())
    if init is None:
        return add_weight_norm(initialise(codec)).train()
    root = Path(init).expanduser()
    weights = root / "BiCodec" / "model.safetensors" if (root / "BiCodec").is_dir() else root / "model.safetensors"
    state = read_state_dict(weights)
    try:
        codec.load_released_state_dict(state, source=str(weights))
    except CheckpointError as exc:
        raise CheckpointError(f"--init {root}: {exc} Set the config's model: to {root} (its BiCodec "
                              f"config) to fine-tune it.") from exc
    return load_weight_norm_pairs(add_weight_norm(codec), state).train()
