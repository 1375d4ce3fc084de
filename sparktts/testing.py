"""Random-weight releases in the exact ``Spark-TTS-0.5B`` layout, for tests, demos and benchmarks.

``make_random_release(path, preset="tiny")`` writes::

    path/config.yaml
    path/BiCodec/{config.yaml, model.safetensors}        weight-normed layers as weight_g / weight_v
    path/wav2vec2-large-xlsr-53/{config.json, preprocessor_config.json, model.safetensors}
    path/LLM/{config.json, model.safetensors, tokenizer.json, ...}

``preset="full"`` uses the released dimensions (BiCodec 156 M parameters, wav2vec2-large, Qwen2.5-0.5B
with vocabulary 166000); ``"tiny"`` builds in seconds and weighs a few MB. The weights are random:
the pipeline runs end to end, but the audio is not speech.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from .audio import reference_clip
from .checkpoint import unfold_state_dict
from .codec.bicodec import BiCodec
from .codec.tokenizer import W2V_DIR
from .codec.vocos import ConvNeXtBlock
from .codec.wav2vec2 import Wav2Vec2Features
from .config import BiCodecConfig

RELEASE_TOP_CONFIG = {
    "highpass_cutoff_freq": 40,
    "sample_rate": 16000,
    "segment_duration": 2.4,
    "max_val_duration": 12,
    "latent_hop_length": 320,
    "ref_segment_duration": 6,
    "volume_normalize": True,
}

_MEL = {"sample_rate": 16000, "n_fft": 1024, "win_length": 640, "hop_length": 320, "mel_fmin": 10,
        "mel_fmax": None, "num_mels": 128}


def bicodec_config(preset: str = "tiny") -> BiCodecConfig:
    """The released BiCodec config (``"full"``) or a small one with the same structure (``"tiny"``)."""
    if preset == "full":
        dim, inter, enc_layers, post_layers, width, gen_ch, codes, latent, tokens, out = (
            384, 2048, 12, 6, 1024, 1536, 8192, 128, 32, 1024)
    elif preset == "tiny":
        dim, inter, enc_layers, post_layers, width, gen_ch, codes, latent, tokens, out = (
            32, 64, 2, 1, 32, 64, 128, 16, 32, 32)
    else:
        raise ValueError(f"preset must be 'tiny' or 'full', not {preset!r}")
    vocos = {"vocos_dim": dim, "vocos_intermediate_dim": inter}
    return BiCodecConfig.from_dict({"audio_tokenizer": {
        "mel_params": dict(_MEL),
        "encoder": {"input_channels": 1024 if preset == "full" else 32, **vocos,
                    "vocos_num_layers": enc_layers, "out_channels": width, "sample_ratios": [1, 1]},
        "decoder": {"input_channel": width, "channels": gen_ch, "rates": [8, 5, 4, 2],
                    "kernel_sizes": [16, 11, 8, 4]},
        "quantizer": {"input_dim": width, "codebook_size": codes, "codebook_dim": 8, "commitment": 0.25,
                      "codebook_loss_weight": 2.0, "use_l2_normlize": True, "threshold_ema_dead_code": 0.2},
        "speaker_encoder": {"input_dim": 128, "out_dim": out, "latent_dim": latent, "token_num": tokens,
                            "fsq_levels": [4, 4, 4, 4, 4, 4], "fsq_num_quantizers": 1},
        "prenet": {"input_channels": width, **vocos, "vocos_num_layers": enc_layers, "out_channels": width,
                   "condition_dim": out, "sample_ratios": [1, 1], "use_tanh_at_final": False},
        "postnet": {"input_channels": width, **vocos, "vocos_num_layers": post_layers,
                    "out_channels": width, "use_tanh_at_final": False},
    }}, where=f"{preset} preset")


def random_bicodec(config: BiCodecConfig, seed: int = 0) -> BiCodec:
    """A BiCodec with deterministic random weights scaled to keep activations in a sane range."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BiCodec(config)
        for module in model.modules():
            if isinstance(module, ConvNeXtBlock):
                nn.init.constant_(module.gamma, 1.0 / 8)  # layer scale, as trained models keep it small
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight)
    return model.eval()


def calibration_clips(seconds: float = 3.0, sr: int = 16000) -> list[np.ndarray]:
    """Three synthetic clips with different spectra (a chirp, a vowel-like buzz, filtered noise)."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(7)
    chirp = 0.3 * np.sin(2 * np.pi * (100 + 600 * t) * t)
    buzz = 0.3 * np.sign(np.sin(2 * np.pi * 140 * t)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    noise = np.convolve(rng.standard_normal(t.size), np.ones(8) / 8, mode="same") * 0.3
    return [x.astype(np.float32) for x in (chirp, buzz, noise)]


@torch.no_grad()
def calibrate(model: BiCodec, features: Wav2Vec2Features, ref_length: int = 96000) -> None:
    """Shift/scale two affine maps so random weights give varied tokens (as the reference data did).

    The factorized VQ input projection is centred (otherwise every frame points the same way and
    picks the same code), and the speaker FSQ input projection is standardised per dimension to std 1.5
    (otherwise all 32 global tokens fall in the same FSQ cell).
    """
    clips = calibration_clips()
    feats = features(clips).features
    z_e = model.quantizer.in_project(model.encoder(feats.transpose(1, 2)))  # (B, d, T)
    model.quantizer.in_project.bias -= z_e.mean(dim=(0, 2))
    refs = torch.from_numpy(np.stack([reference_clip(c, ref_length) for c in clips])).float()
    mel = model.mel_transformer(refs).transpose(1, 2)
    latent = model.speaker_encoder.encode(mel).latent  # (B, L, K)
    proj = model.speaker_encoder.quantizer.project_in
    h = proj(latent.transpose(1, 2)).reshape(-1, proj.out_features)
    scale = 1.5 / h.std(dim=0).clamp_min(1e-6)
    proj.weight.mul_(scale[:, None])
    proj.bias.copy_((proj.bias - h.mean(dim=0)) * scale)


def write_bicodec(codec_dir: str | os.PathLike, config: BiCodecConfig, seed: int = 0,
                  features: Wav2Vec2Features | None = None) -> Path:
    """Write ``config.yaml`` + ``model.safetensors`` (released key layout) for a random BiCodec.

    With ``features`` (the release's wav2vec2 stage) the weights are calibrated for varied tokens.
    """
    from safetensors.torch import save_file

    codec_dir = Path(codec_dir)
    codec_dir.mkdir(parents=True, exist_ok=True)
    (codec_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    model = random_bicodec(config, seed)
    if features is not None:
        calibrate(model, features)
    save_file(unfold_state_dict(model), str(codec_dir / "model.safetensors"))
    return codec_dir


def wav2vec2_config(preset: str = "tiny"):
    """A ``Wav2Vec2Config`` with the release's structure (large-xlsr-53 dims for ``"full"``)."""
    from transformers import Wav2Vec2Config

    common = {"feat_extract_norm": "layer", "do_stable_layer_norm": True, "conv_bias": True,
              "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_stride": [5, 2, 2, 2, 2, 2, 2],
              "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16,
              "feat_extract_activation": "gelu", "hidden_act": "gelu", "architectures": ["Wav2Vec2Model"]}
    if preset == "full":
        return Wav2Vec2Config(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                              intermediate_size=4096, conv_dim=[512] * 7, **common)
    # 18 layers, so that hidden state 16 is an inner layer exactly as in the 24-layer release.
    return Wav2Vec2Config(hidden_size=32, num_hidden_layers=18, num_attention_heads=2, intermediate_size=64,
                          conv_dim=[32] * 7, **common)


def write_wav2vec2(w2v_dir: str | os.PathLike, preset: str = "tiny", seed: int = 0) -> Path:
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

    w2v_dir = Path(w2v_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Wav2Vec2Model(wav2vec2_config(preset)).eval()
    model.save_pretrained(str(w2v_dir), safe_serialization=True)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(str(w2v_dir))
    return w2v_dir


def make_random_release(
    path: str | os.PathLike,
    preset: str = "tiny",
    seed: int = 0,
    parts: Iterable[str] = ("bicodec", "wav2vec2", "llm"),
) -> Path:
    """Write a random-weight release in the exact ``Spark-TTS-0.5B`` layout and return its path.

    ``parts`` selects what to write (``"bicodec"``, ``"wav2vec2"``, ``"llm"``); the top-level
    ``config.yaml`` is always written. A part whose directory already exists is left alone, so a cached
    full-size release is built once.
    """
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    parts = set(parts)
    unknown = parts - {"bicodec", "wav2vec2", "llm"}
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; choose from bicodec, wav2vec2, llm")
    (root / "config.yaml").write_text(yaml.safe_dump(RELEASE_TOP_CONFIG, sort_keys=False))
    if "wav2vec2" in parts and not (root / W2V_DIR / "model.safetensors").exists():
        write_wav2vec2(root / W2V_DIR, preset, seed + 1)
    if "bicodec" in parts and not (root / "BiCodec" / "model.safetensors").exists():
        features = Wav2Vec2Features(root / W2V_DIR) if (root / W2V_DIR / "model.safetensors").exists() else None
        write_bicodec(root / "BiCodec", bicodec_config(preset), seed, features)
    if "llm" in parts and not (root / "LLM" / "model.safetensors").exists():
        from .llm.factory import make_random_llm

        make_random_llm(root / "LLM", preset=preset, seed=seed + 2)
    return root
