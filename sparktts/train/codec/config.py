"""The codec training config: nested frozen dataclasses read from YAML (an unknown key is an error).

The model section is the released ``BiCodec/config.yaml`` mapping (``audio_tokenizer: {...}``), a
path to such a file or release, or a name of :func:`sparktts.testing.bicodec_config` (``tiny``,
``full``/``release``): one source of truth for model dimensions. :func:`load_codec_config` resolves it
to the full mapping, so a run directory's ``config.yaml`` records every dimension that was trained.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...config import BiCodecConfig
from ...errors import ConfigError
from ..config import load_config

MODEL_NAMES = {"tiny": "tiny", "full": "full", "release": "full"}
# BiCodec parts a run can keep fixed (``freeze``). The first three make the tokens: frozen, they keep
# every token the codec gives, so an LLM trained on them stays valid while the decoder trains on.
FREEZABLE = ("encoder", "quantizer", "speaker_encoder", "prenet", "postnet", "decoder")


@dataclass(frozen=True)
class FeatureModelConfig:
    """The wav2vec2 feature stage.

    ``pretrained``: a release directory or its ``wav2vec2-large-xlsr-53/`` folder, used frozen (as
    released). Without it a small wav2vec2 with the dimensions below is built from random weights and
    must be trained jointly (``trainable: true``); it is exported into the release's
    ``wav2vec2-large-xlsr-53/``. ``trainable`` with ``pretrained`` fine-tunes the pretrained model.
    """

    pretrained: str | None = None
    trainable: bool = False
    hidden_size: int = 32
    num_hidden_layers: int = 16  # hidden states 11, 14 and 16 are mixed: 16 layers is the minimum
    num_attention_heads: int = 2
    intermediate_size: int = 64
    conv_dim: int = 32


@dataclass(frozen=True)
class DataConfig:
    segment_seconds: float = 2.4  # training segment (rounded down to whole 320-sample frames)
    ref_seconds: float = 6.0  # speaker reference clip, tiled when the utterance is shorter
    batch_size: int = 8  # per process and per accumulation step
    num_workers: int = 0
    volume_normalize: bool = True  # as the release's config.yaml prepares prompts


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 2e-4
    disc_lr: float | None = None  # default: lr
    betas: tuple[float, ...] = (0.8, 0.9)
    weight_decay: float = 0.0
    warmup_steps: int = 1000  # linear warm-up, then cosine decay to min_lr_ratio * lr at max_steps
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    # Steps the model trained before this run (one started from a checkpoint's export): the decay goes on
    # from there instead of starting over at the peak. The warm-up still ramps this run's fresh optimizer.
    schedule_start: int = 0


@dataclass(frozen=True)
class LossConfig:
    """Weights of the generator loss and the multi-resolution mel loss settings."""

    mel: float = 15.0
    feature: float = 1.0  # wav2vec2-feature MSE through the postnet
    vq: float = 1.0  # commitment/codebook weights inside come from the model's quantizer section
    adversarial: float = 1.0
    feature_matching: float = 2.0
    # Not in the released recipe (0 keeps it): the quantized latent predicts each frame's log F0 and
    # voicing through a small head (:mod:`.pitch`), so a small codec trained from scratch puts the pitch
    # into its tokens. The head is not exported.
    pitch: float = 0.0
    mel_windows: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048)
    mel_bins: tuple[int, ...] = (5, 10, 20, 40, 80, 160, 320)


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Multi-period (HiFi-GAN) and multi-band multi-resolution STFT (DAC) discriminators, LSGAN."""

    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    period_channels: tuple[int, ...] = (32, 128, 512, 1024, 1024)
    stft_windows: tuple[int, ...] = (2048, 1024, 512)
    stft_channels: int = 32
    bands: tuple[tuple[float, ...], ...] = ((0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))
    start_step: int = 0  # adversarial and feature-matching losses from this step on


@dataclass(frozen=True)
class CodecTrainConfig:
    model: Any = "tiny"  # released audio_tokenizer mapping, a path, or tiny | full | release
    wav2vec2: FeatureModelConfig = field(default_factory=FeatureModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    max_steps: int = 10000
    speaker_start_step: int = 0  # before it the decoder gets a zero d-vector (global path off)
    # BiCodec parts (FREEZABLE) kept as they are: no gradient, eval mode (no BatchNorm statistics, no
    # dead-code resets). [encoder, quantizer, speaker_encoder] with a frozen wav2vec2 trains the
    # decoder side on fixed tokens.
    freeze: tuple[str, ...] = ()
    grad_accum_steps: int = 1
    mixed_precision: str = "no"  # no | bf16 | fp16 (bf16 on GPU)
    sync_batchnorm: bool = False  # see trainer docstring: per-process BatchNorm by default
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 10
    seed: int = 0

    def bicodec(self) -> BiCodecConfig:
        """The model config this run trains (``model`` must be resolved, see :func:`load_codec_config`)."""
        return resolve_model(self.model, "model")


def resolve_model(model: Any, where: str) -> BiCodecConfig:
    if isinstance(model, dict):
        return BiCodecConfig.from_dict(model, where=where)
    if isinstance(model, str):
        if model in MODEL_NAMES:
            from ...testing import bicodec_config

            return bicodec_config(MODEL_NAMES[model])
        path = Path(model).expanduser()
        for cand in (path, path / "BiCodec" / "config.yaml", path / "config.yaml"):  # a release: its codec
            if cand.is_file():
                return BiCodecConfig.from_yaml(cand)
        raise ConfigError(f"{where}: {model!r} is neither a model name ({sorted(MODEL_NAMES)}) nor a "
                          f"BiCodec config.yaml or release directory.")
    raise ConfigError(f"{where}: expected a mapping, a path or one of {sorted(MODEL_NAMES)}, got {model!r}.")


def check_fixed_tokens(cfg: CodecTrainConfig, release: str | Path, where: str) -> None:
    """A decoder-only run from ``release`` must prepare audio as that release does.

    With the tokenizer side frozen the point is to keep the release's tokens (an LLM trained on them ships
    with the new decoder), but the export writes ``ref_segment_duration`` and ``volume_normalize`` from
    ``data``: other values would change every prompt's global tokens. Caught here, before hours of training,
    rather than by ``export --codec`` afterwards.
    """
    if not set(FREEZABLE[:3]) <= set(cfg.freeze) or cfg.wav2vec2.trainable:
        return
    top = Path(release).expanduser() / "config.yaml"
    if not top.is_file():
        return
    import yaml

    audio = yaml.safe_load(top.read_text()) or {}
    for key, name, mine in (("ref_segment_duration", "ref_seconds", cfg.data.ref_seconds),
                            ("volume_normalize", "volume_normalize", cfg.data.volume_normalize)):
        if key in audio and audio[key] != mine:
            raise ConfigError(f"{where}: data.{name} is {mine!r} but {top} has {key}: {audio[key]!r}. The "
                              f"tokenizer side is frozen to keep that release's tokens, and the exported codec "
                              f"would prepare prompts differently; set data.{name}: {audio[key]!r}.")


_CHOICES = {"mixed_precision": ("no", "bf16", "fp16")}


def validate(cfg: CodecTrainConfig, where: str) -> CodecTrainConfig:
    """Resolve the model section and check values the dataclass types cannot express."""
    model = resolve_model(cfg.model, f"{where}: model")
    for name, choices in _CHOICES.items():
        if getattr(cfg, name) not in choices:
            raise ConfigError(f"{where}: {name} must be one of {list(choices)}, got {getattr(cfg, name)!r}.")
    if len(cfg.loss.mel_windows) != len(cfg.loss.mel_bins):
        raise ConfigError(f"{where}: loss.mel_windows and loss.mel_bins need the same length.")
    if cfg.wav2vec2.pretrained is None and not cfg.wav2vec2.trainable:
        raise ConfigError(f"{where}: wav2vec2 has no 'pretrained' path, so its random weights must be trained: "
                          f"set wav2vec2.trainable: true, or give wav2vec2.pretrained: RELEASE_DIR.")
    if cfg.wav2vec2.pretrained is None and cfg.wav2vec2.hidden_size != model.encoder.input_channels:
        raise ConfigError(f"{where}: wav2vec2.hidden_size {cfg.wav2vec2.hidden_size} must equal the model's "
                          f"encoder.input_channels {model.encoder.input_channels}.")
    if model.postnet.out_channels != model.encoder.input_channels:
        raise ConfigError(f"{where}: postnet.out_channels must equal encoder.input_channels (the postnet "
                          f"reconstructs the wav2vec2 features).")
    unknown = sorted(set(cfg.freeze) - set(FREEZABLE))
    if unknown:
        raise ConfigError(f"{where}: freeze: unknown part(s) {unknown}; choose from {list(FREEZABLE)} (the "
                          f"wav2vec2 stage is frozen with wav2vec2.trainable: false).")
    if set(FREEZABLE) <= set(cfg.freeze):
        raise ConfigError(f"{where}: freeze lists every part of the codec: nothing would train.")
    if isinstance(cfg.model, str):
        check_fixed_tokens(cfg, cfg.model, where)
    for name in ("max_steps", "grad_accum_steps", "checkpoint_every", "log_every", "keep_checkpoints"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{where}: {name} must be at least 1.")
    if cfg.data.batch_size < 1 or cfg.data.segment_seconds <= 0 or cfg.data.ref_seconds <= 0:
        raise ConfigError(f"{where}: data.batch_size, segment_seconds and ref_seconds must be positive.")
    if not 0 <= cfg.optim.schedule_start < cfg.max_steps:
        raise ConfigError(f"{where}: optim.schedule_start ({cfg.optim.schedule_start}: steps trained before "
                          f"this run) must be at least 0 and below max_steps ({cfg.max_steps}, the whole "
                          f"training's); raise max_steps to train on.")
    w2v = cfg.wav2vec2
    if w2v.pretrained is not None and Path(w2v.pretrained).expanduser().exists():
        # Absolute in the run's config.yaml: export and --resume may run from another folder.
        w2v = dataclasses.replace(w2v, pretrained=str(Path(w2v.pretrained).expanduser().resolve()))
    return dataclasses.replace(cfg, model=model.to_dict(), wav2vec2=w2v)


def load_codec_config(source: str | Path | CodecTrainConfig, overrides: dict[str, Any] | None = None
                      ) -> CodecTrainConfig:
    """A YAML path, a preset name (``tiny``, ``small``, ``release``) or a config -> a resolved config."""
    if isinstance(source, CodecTrainConfig):
        cfg, where = source, "codec config"
        if overrides:
            cfg = dataclasses.replace(cfg, **overrides)
    else:
        cfg, where = load_config(CodecTrainConfig, source, "codec", overrides), str(source)
    return validate(cfg, where)
