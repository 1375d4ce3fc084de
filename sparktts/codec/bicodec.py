"""BiCodec: the Spark-TTS audio codec.

Two token streams: semantic tokens (50 per second) from wav2vec2 features through the feature
encoder and a factorized VQ, and 32 global tokens from the mel of a 6 s reference clip through the
speaker encoder. Decoding maps semantic tokens to latents, conditions them on the d-vector that the
global tokens decode to, and renders a 16 kHz waveform.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoint import load_strict, read_state_dict, resolve_model_dir
from ..config import BiCodecConfig
from ..errors import CheckpointError, TokenError
from ..runtime import release_memory
from .generator import WaveGenerator
from .mel import MelSpectrogram
from .quantize import FactorizedVectorQuantize
from .speaker import SpeakerEncoder, SpeakerEncoding
from .tokens import BiCodecTokens
from .vocos import FeatureDecoder, FeatureEncoder


def decoder_context(config: BiCodecConfig) -> int:
    """Tokens on each side of a token that influence its decoded audio (ceil of the receptive radius).

    The decoder is convolutional (prenet ConvNeXt blocks, then the DAC-style generator), so decoding a
    window that extends this far beyond the kept part reproduces the whole-sequence decode (used by
    long-sequence decoding here and by :mod:`sparktts.streaming`).
    """
    pre = config.prenet
    radius = 0.0  # in tokens
    rate = 1.0  # frames per token at the current layer
    for r in pre.sample_ratios:  # resampling stages: (optional upsample) + conv(7) embed + 2 ConvNeXt blocks
        if r > 1:
            radius += 1.0 / rate  # the transposed-conv upsampler (kernel 2r, stride r) reaches ~1 input frame
            rate *= r
        radius += (3 + 2 * 3) / rate
    radius += 3 * (1 + pre.vocos_num_layers) / rate  # backbone: conv(7) embed + N ConvNeXt dwconv(7)
    gen = config.decoder
    frame_rate = rate  # generator input frames per token
    radius += 3 / frame_rate  # input conv(7)
    for kernel, stride in zip(gen.kernel_sizes, gen.rates):
        radius += math.ceil(kernel / (2 * stride)) / frame_rate  # transposed conv, in input frames
        frame_rate *= stride
        radius += (3 * (1 + 3 + 9)) / frame_rate  # residual units, dilations 1, 3, 9
    radius += 3 / frame_rate  # output conv(7)
    return math.ceil(radius)


# Training-only buffers that a checkpoint may or may not carry.
OPTIONAL_KEYS = (".num_batches_tracked", "quantizer.cluster_size")
# Buffers of torchaudio's MelSpectrogram: computed from mel_params, never loaded.
COMPUTED_KEYS = ("mel_transformer.spectrogram.window", "mel_transformer.mel_scale.fb")


@dataclass
class CodecOutput:
    """What :meth:`BiCodec.forward` returns: the reconstruction and the codec's own losses.

    ``losses`` holds unweighted ``commitment`` and ``codebook`` terms, their configured mix ``vq``
    (``commitment * commitment + codebook_loss_weight * codebook``, the weights of the quantizer
    config) and ``feature``: the MSE between the postnet's prediction and the wav2vec2 features.
    The adversarial and mel losses need the target audio and the discriminators; they live in
    :mod:`sparktts.train.codec.losses`.
    """

    wav: Tensor  # (B, 1, T * hop) reconstructed waveform in [-1, 1]
    losses: dict[str, Tensor]  # name -> () scalar
    semantic_ids: Tensor  # (B, T) int64
    global_ids: Tensor | None  # (B, G) int64, None while the speaker path is off
    pred_feats: Tensor  # (B, D, T) postnet output (the feature reconstruction)
    codes_used: Tensor  # () distinct semantic codes in the batch
    z_q: Tensor | None = None  # (B, D, T) quantized latents (straight-through to the encoder)


@dataclass
class EncoderTrace:
    """Intermediates of :meth:`BiCodec.encode_with_trace` for analysis and plots."""

    mel: Tensor  # (B, n_mels, M) linear-magnitude mel of the reference clip
    z: Tensor  # (B, C, T) feature-encoder output
    speaker: SpeakerEncoding


class BiCodec(nn.Module):
    """The codec. Module names match the released ``BiCodec/model.safetensors``.

    encode: ref_wav ``(B, 96000)`` float 16 kHz + feats ``(B, T, D)`` -> :class:`BiCodecTokens`
    decode: :class:`BiCodecTokens` (``(B, 32)``, ``(B, N)``) -> wav ``(B, 1, N * 320)`` in [-1, 1].
    """

    def __init__(self, config: BiCodecConfig):
        super().__init__()
        self.config = config
        self.encoder = FeatureEncoder(config.encoder)
        self.quantizer = FactorizedVectorQuantize(config.quantizer)
        self.speaker_encoder = SpeakerEncoder(config.speaker_encoder)
        self.prenet = FeatureDecoder(config.prenet)
        # Predicts the features for a training loss; BiCodecTokenizer (inference) sets it to None.
        self.postnet: FeatureDecoder | None = FeatureDecoder(config.postnet)
        self.decoder = WaveGenerator(config.decoder)
        self.mel_transformer = MelSpectrogram(config.mel)
        self._context = decoder_context(config)

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike, device: str | torch.device = "cpu") -> BiCodec:
        """Load ``config.yaml`` + ``model.safetensors`` from a ``BiCodec/`` dir or a release root."""
        root = resolve_model_dir(model_dir)
        codec_dir = root / "BiCodec" if (root / "BiCodec").is_dir() else root
        config = BiCodecConfig.from_yaml(codec_dir / "config.yaml")
        model = cls(config)
        weights = codec_dir / "model.safetensors"
        if not weights.is_file():
            raise CheckpointError(f"{weights}: not found; a BiCodec directory holds config.yaml and "
                                  f"model.safetensors.")
        model.load_released_state_dict(read_state_dict(weights), source=str(weights))
        return model.to(device).eval()

    def load_released_state_dict(self, state_dict: dict[str, Tensor], source: str = "state dict") -> None:
        """Strictly load a state dict in the released layout (weight-norm pairs folded on the way)."""
        load_strict(self, state_dict, source, optional=OPTIONAL_KEYS, ignored=COMPUTED_KEYS)

    @property
    def device(self) -> torch.device:
        return self.quantizer.codebook.weight.device

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    # -- training ---------------------------------------------------------------------------------
    def forward(self, feats: Tensor, ref_wav: Tensor, use_speaker: bool = True) -> CodecOutput:
        """Reconstruct the audio behind ``feats`` and return the codec's losses (the training path).

        ``feats``: ``(B, T, D)`` wav2vec2 features (mean of hidden states 11/14/16) of the segment;
        ``ref_wav``: ``(B, L)`` float 16 kHz speaker-reference clip of the same utterances.
        ``use_speaker=False`` conditions the decoder on a zero d-vector (the speaker path is off in the
        first training steps, so the semantic path learns the content first).
        Returns :class:`CodecOutput` with ``wav`` ``(B, 1, T * hop)``. In ``train()`` mode the factorized
        VQ also updates its usage statistics and resets dead codes. The released inference calls
        (``encode``/``decode``) do not use this method and are unaffected by it.
        """
        if self.postnet is None:
            raise RuntimeError("this BiCodec was loaded for inference (BiCodecTokenizer lets the training-only "
                               "postnet go); load BiCodec.from_pretrained(...) for the training forward.")
        z = self.encoder(feats.transpose(1, 2))  # (B, C, T)
        vq = self.quantizer(z)
        if use_speaker:
            mel = self.mel_transformer(ref_wav)  # (B, n_mels, M)
            speaker = self.speaker_encoder.encode(mel.transpose(1, 2))
            d_vector, global_ids = speaker.d_vector, speaker.global_ids.squeeze(1)
        else:
            d_vector = z.new_zeros(z.shape[0], self.config.speaker_encoder.out_dim)
            global_ids = None
        x = self.prenet(vq.z_q, d_vector)  # (B, C, T)
        pred_feats = self.postnet(x)  # (B, D, T)
        wav = self.decoder(x + d_vector.unsqueeze(-1))
        losses = {
            "commitment": vq.commitment_loss,
            "codebook": vq.codebook_loss,
            "vq": vq.loss,
            # The target is fixed: with a jointly trained feature model, a gradient through it would
            # let both sides shrink the features to zero.
            "feature": F.mse_loss(pred_feats.float(), feats.transpose(1, 2).detach().float()),
        }
        return CodecOutput(wav, losses, vq.ids, global_ids, pred_feats, vq.codes_used, vq.z_q)

    # -- encoding --------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode_with_trace(self, ref_wav: Tensor, feats: Tensor, with_x_vector: bool = False
                          ) -> tuple[BiCodecTokens, EncoderTrace]:
        mel = self.mel_transformer(ref_wav)  # (B, n_mels, M)
        z = self.encoder(feats.transpose(1, 2))
        semantic = self.quantizer.tokenize(z)
        speaker = self.speaker_encoder.encode(mel.transpose(1, 2), with_x_vector=with_x_vector)
        return BiCodecTokens(speaker.global_ids, semantic), EncoderTrace(mel, z, speaker)

    def encode(self, ref_wav: Tensor, feats: Tensor) -> BiCodecTokens:
        """ref_wav ``(B, L)`` float, feats ``(B, T, D)`` -> tokens ``(B, G)`` and ``(B, T)``."""
        return self.encode_with_trace(ref_wav, feats)[0]

    @torch.inference_mode()
    def encode_global(self, ref_wav: Tensor) -> Tensor:
        """Only the speaker branch: ``(B, L)`` -> global ids ``(B, G)``."""
        mel = self.mel_transformer(ref_wav)
        return self.speaker_encoder.tokenize(mel.transpose(1, 2)).squeeze(1)

    # -- decoding --------------------------------------------------------------------------------
    def _check_ids(self, tokens: BiCodecTokens) -> None:
        g, s = tokens.global_ids, tokens.semantic_ids
        n_global = self.config.speaker_encoder.token_num
        n_fsq = self.speaker_encoder.quantizer.codebook_size
        n_sem = self.quantizer.codebook_size
        if g.shape[-1] != n_global:
            raise TokenError(f"global_ids has {g.shape[-1]} tokens per row; this codec uses {n_global}.")
        if s.shape[-1] == 0:
            raise TokenError("semantic_ids is empty; there is nothing to decode.")
        if g.dtype.is_floating_point or s.dtype.is_floating_point:
            raise TokenError("token ids must be integer tensors.")
        if int(g.min()) < 0 or int(g.max()) >= n_fsq:
            raise TokenError(f"global ids must lie in [0, {n_fsq}); given range [{int(g.min())}, {int(g.max())}].")
        if int(s.min()) < 0 or int(s.max()) >= n_sem:
            raise TokenError(f"semantic ids must lie in [0, {n_sem}); given range [{int(s.min())}, {int(s.max())}].")

    @torch.inference_mode()
    def decode_latents(self, tokens: BiCodecTokens) -> dict[str, Tensor]:
        """The decoder's intermediates: ``z_q``, ``d_vector``, ``prenet_out``, ``decoder_in``, ``wav``."""
        self._check_ids(tokens)
        tokens = tokens.to(self.device)
        z_q = self.quantizer.detokenize(tokens.semantic_ids.long())
        d_vector = self.speaker_encoder.detokenize(tokens.global_ids.long().unsqueeze(1))
        prenet_out = self.prenet(z_q, d_vector)
        decoder_in = prenet_out + d_vector.unsqueeze(-1)
        return {"z_q": z_q, "d_vector": d_vector, "prenet_out": prenet_out, "decoder_in": decoder_in,
                "wav": self.decoder(decoder_in)}

    @torch.inference_mode()
    def decode(self, tokens: BiCodecTokens, window: int | None = 512) -> Tensor:
        """Tokens -> ``(B, 1, N * hop)`` waveform. Padded rows decode to full length; trim with ``lengths``.

        Sequences longer than ``window`` tokens are decoded in windows of ``window`` tokens plus the
        decoder's receptive context on each side (:func:`decoder_context`), keeping only each window's
        own samples: the result equals the one-pass decode up to float rounding, and peak memory stays
        bounded for long-form audio (a one-pass decode of 60 s holds several 0.4 GB activations).
        ``window=None`` decodes in one pass.
        """
        self._check_ids(tokens)
        tokens = tokens.to(self.device)
        d_vector = self.speaker_encoder.detokenize(tokens.global_ids.long().unsqueeze(1))
        z_q = self.quantizer.detokenize(tokens.semantic_ids.long())
        n = z_q.shape[-1]
        if window is None or n <= window + 2 * self._context:
            return self.decoder(self.prenet(z_q, d_vector) + d_vector.unsqueeze(-1))
        ctx, hop, pieces = self._context, self.hop_length, []
        for start in range(0, n, window):
            end = min(start + window, n)
            lo, hi = max(0, start - ctx), min(n, end + ctx)
            wav = self.decoder(self.prenet(z_q[..., lo:hi], d_vector) + d_vector.unsqueeze(-1))
            pieces.append(wav[..., (start - lo) * hop: (end - lo) * hop].clone())
            del wav
            release_memory()  # each window's activations go back before the next: peak = one window
        return torch.cat(pieces, dim=-1)

    # Original names (BiCodec.tokenize returns (semantic, global) with global shaped (B, 1, G)).
    def tokenize(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Drop-in for the original ``BiCodec.tokenize({"feat", "ref_wav"})`` -> ``(semantic, global)``."""
        tokens = self.encode(batch["ref_wav"].to(self.device), batch["feat"].to(self.device))
        return tokens.semantic_ids, tokens.global_ids.unsqueeze(1)

    def detokenize(self, semantic_tokens: Tensor, global_tokens: Tensor) -> Tensor:
        """Drop-in for the original ``BiCodec.detokenize(semantic, global)`` -> ``(B, 1, N * hop)``."""
        return self.decode(BiCodecTokens(global_tokens, semantic_tokens))

