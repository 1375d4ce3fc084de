"""The wav2vec2 feature stage: 16 kHz audio -> the mean of hidden states 11, 14 and 16 (50 frames/s).

Uses transformers' ``Wav2Vec2FeatureExtractor`` and ``Wav2Vec2Model`` from the release's
``wav2vec2-large-xlsr-53/`` directory. Only the first 16 transformer layers are ever used, so by
default only those are built and loaded (the final LayerNorm is skipped too: ``hidden_states[16]``
of the full 24-layer model is the raw output of layer 16, before that norm).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..checkpoint import quiet_transformers_loading
from ..errors import CheckpointError

MIX_LAYERS = (11, 14, 16)


# Frames per piece of the convolutional feature encoder on long inputs (10 s).
CONV_CHUNK_FRAMES = 500


def _chunk_conv_stack(encoder: nn.Module, config: object, chunk: int = CONV_CHUNK_FRAMES) -> None:
    """Make transformers' conv feature encoder run long inputs in pieces of ``chunk`` output frames.

    With per-frame LayerNorm (``feat_extract_norm="layer"``, as in xlsr-53) each output frame depends
    only on its own receptive field (400 samples, hop 320), so pieces cut from overlapping input spans
    give the frames of one pass, while the 512-channel activations -- ~130 MB each for 20 s at the first
    layers -- are held for one piece at a time. (Group norm normalises over time: not chunked.)
    """
    hop, field = 1, 1
    for kernel, stride in zip(config.conv_kernel, config.conv_stride):
        field += (kernel - 1) * hop
        hop *= stride
    one_pass = encoder.forward

    def forward(input_values: Tensor) -> Tensor:  # (B, N) -> (B, C, frames)
        frames = (input_values.shape[-1] - field) // hop + 1
        if frames <= chunk or torch.is_grad_enabled():
            return one_pass(input_values)
        pieces = [one_pass(input_values[:, f0 * hop: (min(f0 + chunk, frames) - 1) * hop + field])
                  for f0 in range(0, frames, chunk)]
        return torch.cat(pieces, dim=-1)

    encoder.forward = forward


def _store_matmul_weights(model: nn.Module, dtype: torch.dtype) -> None:
    """Keep the weights of the layers that autocast runs in ``dtype`` (linear, conv) in ``dtype``.

    Autocast would cast them on every call to the same values (round to nearest), so the features do not
    change, while the stage holds half the memory (430 MB less for xlsr-53's 16 layers) and skips the
    casts. The weight-normed positional conv is folded first, in float32, as its forward computes it.
    Norms stay float32, as autocast leaves them.
    """
    from torch.nn.utils import parametrize

    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
            module.to(dtype)
    # transformers leaves the weights as views of the mapped checkpoint. A surviving view (a norm's) keeps
    # the whole mapping, and every page the casts above read, resident: copy the rest out of it.
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.dtype != dtype:
            tensor.data = tensor.data.clone()


@dataclass
class Wav2Vec2Output:
    """features: (B, T, D) mean of the mixed layers; lengths: (B,) valid frames; hidden: layer -> (B, T, D)."""

    features: Tensor
    lengths: Tensor
    input_values: Tensor
    hidden: dict[int, Tensor]


class Wav2Vec2Features(nn.Module):
    """``list of (N_i,) float arrays at 16 kHz`` -> :class:`Wav2Vec2Output`.

    Parameters
    ----------
    model_dir : path
        A ``wav2vec2-large-xlsr-53`` directory (``config.json``, ``preprocessor_config.json``, weights).
    all_layers : bool
        Build and run every layer, as the original does (for baselines); same result, slower.
    compute_dtype : torch.dtype
        ``torch.bfloat16`` runs the transformer under bf16 autocast with its linear and conv weights stored
        in bf16 (faster where the hardware has bf16, half the memory; changes the features by ~1.4 % RMS,
        so some semantic tokens); default float32, as released.
    """

    def __init__(self, model_dir: str | os.PathLike, all_layers: bool = False,
                 compute_dtype: torch.dtype = torch.float32):
        super().__init__()
        # bf16 runs the matrix products under autocast (their weights stored in bf16); features come out
        # float32.
        self.compute_dtype = compute_dtype
        from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

        model_dir = Path(model_dir)
        for name in ("config.json", "preprocessor_config.json"):
            if not (model_dir / name).is_file():
                raise CheckpointError(f"{model_dir / name}: not found; the wav2vec2 stage needs it.")
        self.processor = Wav2Vec2FeatureExtractor.from_pretrained(str(model_dir))
        config = Wav2Vec2Config.from_pretrained(str(model_dir))
        needed = max(MIX_LAYERS)
        if config.num_hidden_layers < needed:
            raise CheckpointError(f"{model_dir}: has {config.num_hidden_layers} transformer layers; "
                                  f"Spark-TTS mixes hidden states {MIX_LAYERS} and needs at least {needed}.")
        self.truncated = not all_layers and config.num_hidden_layers > needed
        if self.truncated:
            config.num_hidden_layers = needed
        # The skipped layers' weights would be reported as unused: expected, so not shown.
        with quiet_transformers_loading():
            try:
                self.model = Wav2Vec2Model.from_pretrained(str(model_dir), config=config)
            except Exception as exc:  # OSError, or safetensors' SafetensorError for a truncated file
                raise CheckpointError(f"{model_dir}: cannot load wav2vec2 weights ({type(exc).__name__}: {exc}); "
                                      "the file is missing, truncated or corrupt. Download it again.") from exc
        if (self.truncated or config.num_hidden_layers == needed) and config.do_stable_layer_norm:
            # With exactly `needed` layers the last hidden state would be the final-LayerNorm output.
            self.model.encoder.layer_norm = nn.Identity()
        if config.feat_extract_norm == "layer":
            _chunk_conv_stack(self.model.feature_extractor, config)
        if compute_dtype != torch.float32:
            _store_matmul_weights(self.model, compute_dtype)
        self.model.eval()
        logging.getLogger(__name__).debug("wav2vec2 stage: %d layers", config.num_hidden_layers)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def frames(self, num_samples: int) -> int:
        """Number of 50 Hz frames for a clip of ``num_samples`` (``(N - 400) // 320 + 1`` for the release)."""
        return int(self.model._get_feat_extract_output_lengths(torch.tensor(num_samples)))

    @torch.inference_mode()
    def forward(self, wavs: list[np.ndarray], keep_hidden: bool = False) -> Wav2Vec2Output:
        lengths = [int(w.shape[-1]) for w in wavs]
        ragged = len(set(lengths)) > 1
        inputs = self.processor(wavs, sampling_rate=self.processor.sampling_rate, return_tensors="pt",
                                padding=True, return_attention_mask=True)
        input_values = inputs.input_values.to(self.device)
        # Equal lengths: no mask, exactly like the original. Ragged batch: the mask keeps padding out
        # of attention, so each row matches its unbatched result.
        mask = inputs.attention_mask.to(self.device) if ragged else None
        with torch.autocast(self.device.type, dtype=self.compute_dtype,
                            enabled=self.compute_dtype != torch.float32):
            out = self.model(input_values, attention_mask=mask, output_hidden_states=True)
        hidden = {i: out.hidden_states[i].float() for i in MIX_LAYERS}
        feats = (hidden[11] + hidden[14] + hidden[16]) / 3
        frame_lengths = torch.tensor([self.frames(n) for n in lengths])
        return Wav2Vec2Output(feats, frame_lengths, input_values, hidden if keep_hidden else {})
