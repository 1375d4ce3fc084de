"""Audio <-> tokens for whole clips: audio preparation, wav2vec2 features and BiCodec together.

``BiCodecTokenizer`` keeps the original class's names, argument order and return shapes
(``tokenize`` -> ``(global (1, 1, 32), semantic (1, N))``; ``detokenize`` -> float32 numpy), so
existing scripts keep working, and adds a clearer API: ``encode`` -> :class:`BiCodecTokens`,
``decode`` -> waveforms, ``analyze`` -> every intermediate for plots and evaluations.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..audio import AudioInput, load_audio, reference_clip
from ..checkpoint import DEFAULT_REPO_ID, resolve_model_dir
from ..config import AudioConfig
from ..device import resolve_codec_dtype, resolve_device  # resolve_device re-exported: users import it here
from ..errors import AudioError
from ..runtime import release_memory, tune_allocator
from .bicodec import BiCodec
from .speaker import SpeakerEncoding
from .tokens import BiCodecTokens
from .wav2vec2 import Wav2Vec2Features

W2V_DIR = "wav2vec2-large-xlsr-53"


@dataclass
class CodecAnalysis:
    """Everything the tokenizer computes for one clip (batch of one; shapes as documented)."""

    wav: np.ndarray  # (N,) float32 16 kHz, after volume normalisation
    ref_wav: np.ndarray  # (L,) the 6 s speaker reference segment
    input_values: Tensor  # (1, N) normalised wav2vec2 input
    hidden: dict[int, Tensor]  # layer -> (1, T, D) wav2vec2 hidden states 11, 14, 16
    features: Tensor  # (1, T, D) their mean: the feature-encoder input
    mel: Tensor  # (1, n_mels, M) linear-magnitude mel of ref_wav
    z: Tensor  # (1, C, T) feature-encoder output
    speaker: SpeakerEncoding  # x-vector, perceiver latent, quantized latent, d-vector
    tokens: BiCodecTokens

    @property
    def d_vector(self) -> Tensor:
        return self.speaker.d_vector


class BiCodecTokenizer:
    """Audio tokenizer of a Spark-TTS release directory.

    Parameters
    ----------
    model_dir : path
        A release directory (``config.yaml``, ``BiCodec/``, ``wav2vec2-large-xlsr-53/``).
    device : str, int, torch.device or None
        As in the original: None picks ``cuda:0`` when available, ``"0"`` means ``cuda:0``.
    all_wav2vec2_layers : bool
        Run all 24 wav2vec2 layers like the original (same features, slower); default runs 16.
    decoder_dtype : None, "float32", "bfloat16" or "auto"
        Compute dtype of the wave generator, the decoder's costly part. None keeps the release's float32;
        "bfloat16" runs its convolutions in bf16 (about 1.75x faster on an AVX-512 BF16 CPU, more with
        AMX; audio within -40 dB of float32, see the README's benchmark); "auto" picks bf16 where the
        hardware computes it natively. Tokenization is unaffected.
    features_dtype : None, "float32", "bfloat16" or "auto"
        The same for the wav2vec2 stage of tokenization (bf16 autocast: ~1.8x faster on AVX-512 BF16).
        Unlike ``decoder_dtype`` this changes tokens: features move by ~1.4 % RMS, and on random
        weights 11 % of semantic tokens (global tokens: none); measure on your model before using it
        for data preparation.
    """

    def __init__(self, model_dir: str | os.PathLike, device: str | int | torch.device | None = None,
                 *, all_wav2vec2_layers: bool = False, decoder_dtype: str | torch.dtype | None = None,
                 features_dtype: str | torch.dtype | None = None, **kwargs: Any):
        tune_allocator()  # see sparktts.runtime: large activations are reused instead of page-faulted in
        self.model_dir = resolve_model_dir(model_dir, require=("config.yaml", "BiCodec", W2V_DIR))
        self.device = resolve_device(device)
        self.audio_config = AudioConfig.from_yaml(self.model_dir / "config.yaml")
        self.config: dict[str, Any] = {  # the original exposes the raw top-level config dict
            "sample_rate": self.audio_config.sample_rate,
            "ref_segment_duration": self.audio_config.ref_segment_duration,
            "latent_hop_length": self.audio_config.latent_hop_length,
            "volume_normalize": self.audio_config.volume_normalize,
            **self.audio_config.extra,
        }
        self.model = BiCodec.from_pretrained(self.model_dir, device=self.device)
        # The postnet predicts wav2vec2 features for a training loss only: checked by the strict load, then
        # let go (79 MB for the release). BiCodec.from_pretrained keeps it for the training forward.
        self.model.postnet = None
        self.decoder_dtype = resolve_codec_dtype(decoder_dtype, self.device)
        self.model.decoder.to(self.decoder_dtype)
        self.features = Wav2Vec2Features(self.model_dir / W2V_DIR, all_layers=all_wav2vec2_layers,
                                         compute_dtype=resolve_codec_dtype(features_dtype, self.device))
        self.features.to(self.device)
        self.processor = self.features.processor  # original attribute names
        self.feature_extractor = self.features.model
        self.sample_rate = self.audio_config.sample_rate
        release_memory()  # the state dict read next to the model it was copied into
        self.min_samples = max(400, self.model.hop_length)

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike = DEFAULT_REPO_ID,
                        device: str | int | torch.device | None = None, **kwargs: Any) -> BiCodecTokenizer:
        """Load from a local release directory, or a hub repo id when online."""
        return cls(model_dir, device=device, **kwargs)

    # -- audio preparation -------------------------------------------------------------------------
    def load(self, audio: AudioInput, sample_rate: int | None = None) -> np.ndarray:
        """Prepare prompt audio as the release does: mono, 16 kHz, volume-normalised. ``(N,)`` float32."""
        return load_audio(audio, sample_rate, target_sr=self.sample_rate,
                          volume_normalize_audio=self.audio_config.volume_normalize,
                          min_samples=self.min_samples)

    def get_ref_clip(self, wav: np.ndarray) -> np.ndarray:
        """The speaker reference segment (96000 samples for the release), tiled if the clip is shorter."""
        return reference_clip(wav, self.audio_config.ref_segment_length)

    def process_audio(self, wav_path: AudioInput, sample_rate: int | None = None) -> tuple[np.ndarray, Tensor]:
        """Original API: ``(wav (N,), ref_wav (1, L) float tensor)``."""
        wav = self.load(wav_path, sample_rate)
        return wav, torch.from_numpy(self.get_ref_clip(wav)).unsqueeze(0).float()

    def extract_wav2vec2_features(self, wavs: np.ndarray | Tensor | Sequence[np.ndarray]) -> Tensor:
        """Original API: ``(N,)`` or ``(B, N)`` audio (or a list) -> features ``(B, T, D)``."""
        if isinstance(wavs, Tensor):
            wavs = wavs.detach().cpu().numpy()
        if isinstance(wavs, np.ndarray):
            wavs = [wavs] if wavs.ndim == 1 else list(wavs)
        return self.features([np.asarray(w, dtype=np.float32) for w in wavs]).features

    # -- the package's own API ---------------------------------------------------------------------
    def encode(self, audio: AudioInput | Sequence[AudioInput], sample_rate: int | None = None) -> BiCodecTokens:
        """One clip or a list of clips -> :class:`BiCodecTokens` (padded batch with ``lengths``)."""
        clips = list(audio) if isinstance(audio, (list, tuple)) else [audio]
        if not clips:
            raise AudioError("no audio given: pass a path, an array, or a non-empty list of them.")
        wavs = [self.load(c, sample_rate) for c in clips]
        return self.encode_prepared(wavs)

    @torch.inference_mode()
    def encode_prepared(self, wavs: Sequence[np.ndarray]) -> BiCodecTokens:
        """Encode clips already prepared by :meth:`load` (skips reading and normalisation)."""
        refs = torch.from_numpy(np.stack([self.get_ref_clip(w) for w in wavs])).float().to(self.device)
        global_ids = self.model.encode_global(refs)
        w2v = self.features(list(wavs))
        semantic: list[Tensor | None] = [None] * len(wavs)
        # The feature encoder is convolutional: rows of a padded batch would see the padding near
        # their end. Rows of equal length are encoded together, so every row is exact.
        by_length: dict[int, list[int]] = defaultdict(list)
        for i, n in enumerate(w2v.lengths.tolist()):
            by_length[n].append(i)
        for n, rows in by_length.items():
            z = self.model.encoder(w2v.features[rows, :n].transpose(1, 2))
            for row, ids in zip(rows, self.model.quantizer.tokenize(z)):
                semantic[row] = ids
        del w2v, z
        release_memory()
        return BiCodecTokens.from_lists(global_ids.tolist(), [s.tolist() for s in semantic])

    def encode_global(self, audio: AudioInput, sample_rate: int | None = None) -> Tensor:
        """Only the 32 global (speaker) tokens of a clip, ``(1, 32)``: no wav2vec2 pass needed."""
        wav = self.load(audio, sample_rate)
        ref = torch.from_numpy(self.get_ref_clip(wav)).float().unsqueeze(0).to(self.device)
        return self.model.encode_global(ref)

    def decode(self, tokens: BiCodecTokens) -> list[np.ndarray]:
        """Tokens -> one float32 16 kHz waveform per row (each trimmed to its own length)."""
        out: list[np.ndarray | None] = [None] * len(tokens)
        by_length: dict[int, list[int]] = defaultdict(list)
        for i, n in enumerate(tokens.num_semantic):
            by_length[n].append(i)
        for n, rows in by_length.items():
            group = BiCodecTokens(tokens.global_ids[rows], tokens.semantic_ids[rows, :n])
            wav = self.model.decode(group).squeeze(1).float().cpu().numpy()
            for row, w in zip(rows, wav):
                out[row] = w
        release_memory()
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def analyze(self, audio: AudioInput, sample_rate: int | None = None) -> CodecAnalysis:
        """Tokenize one clip and keep every intermediate (features, mel, z, d-vector, ...)."""
        wav = self.load(audio, sample_rate)
        ref = self.get_ref_clip(wav)
        w2v = self.features([wav], keep_hidden=True)
        ref_t = torch.from_numpy(ref).float().unsqueeze(0).to(self.device)
        tokens, trace = self.model.encode_with_trace(ref_t, w2v.features, with_x_vector=True)
        return CodecAnalysis(wav, ref, w2v.input_values, w2v.hidden, w2v.features, trace.mel, trace.z,
                             trace.speaker, tokens)

    # -- original API ------------------------------------------------------------------------------
    def tokenize(self, audio_path: AudioInput, sample_rate: int | None = None) -> tuple[Tensor, Tensor]:
        """Original API: ``(global_tokens (1, 1, 32), semantic_tokens (1, N))``, int64 on the device."""
        tokens = self.encode(audio_path, sample_rate).to(self.device)
        return tokens.global_ids.unsqueeze(1), tokens.semantic_ids

    def tokenize_batch(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """Original API: ``{"wav": (B, N) audio, "ref_wav": (B, L)}`` -> ``(global (B, 1, G), semantic (B, T))``."""
        feats = self.extract_wav2vec2_features(batch["wav"])
        tokens = self.model.encode(batch["ref_wav"].float().to(self.device), feats)
        return tokens.global_ids.unsqueeze(1), tokens.semantic_ids

    def detokenize(self, global_tokens: Tensor, semantic_tokens: Tensor) -> np.ndarray:
        """Original API: ``(B, G)`` (or ``(B, 1, G)``) and ``(B, N)`` ids -> float32 numpy.

        Returns ``(N * 320,)`` for a single clip, ``(B, N * 320)`` for a batch, like the original.
        """
        wav = self.model.decode(BiCodecTokens(global_tokens, semantic_tokens))
        return wav.detach().squeeze().float().cpu().numpy()

