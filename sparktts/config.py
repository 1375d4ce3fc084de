"""Typed configs read from the released YAML files.

``Spark-TTS-0.5B/BiCodec/config.yaml`` holds one ``audio_tokenizer`` mapping with a section per
module; ``Spark-TTS-0.5B/config.yaml`` holds the audio front-end settings. Each section becomes a
frozen dataclass. Unknown keys in a BiCodec section are refused (they would silently change nothing),
while unknown top-level keys are kept in ``extra``, because public copies of that file differ.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import ConfigError

T = TypeVar("T")


def _read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found. A Spark-TTS release directory needs it.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}).") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}.")
    return data


def _build(cls: type[T], data: Any, where: str) -> T:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}.")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(names)}.")
    required = {f.name for f in fields(cls) if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING}
    missing = sorted(required - set(data))
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}.")
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
    return cls(**values)


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int
    n_fft: int
    win_length: int
    hop_length: int
    mel_fmin: float
    mel_fmax: float | None
    num_mels: int


@dataclass(frozen=True)
class EncoderConfig:
    """Feature encoder: wav2vec2 features (B, input_channels, T) -> latents (B, out_channels, T)."""

    input_channels: int
    vocos_dim: int
    vocos_intermediate_dim: int
    vocos_num_layers: int
    out_channels: int
    sample_ratios: tuple[int, ...] = (1, 1)


@dataclass(frozen=True)
class DecoderConfig:
    """Prenet / postnet: latents (B, input_channels, T) -> (B, out_channels, T), optionally conditioned."""

    input_channels: int
    vocos_dim: int
    vocos_intermediate_dim: int
    vocos_num_layers: int
    out_channels: int
    condition_dim: int | None = None
    sample_ratios: tuple[int, ...] = (1, 1)
    use_tanh_at_final: bool = False


@dataclass(frozen=True)
class WaveGeneratorConfig:
    input_channel: int
    channels: int
    rates: tuple[int, ...]
    kernel_sizes: tuple[int, ...]

    @property
    def hop_length(self) -> int:
        hop = 1
        for r in self.rates:
            hop *= r
        return hop


@dataclass(frozen=True)
class QuantizerConfig:
    """Factorized VQ. The loss/EMA settings only matter for training; they are kept for round trips."""

    input_dim: int
    codebook_size: int
    codebook_dim: int
    commitment: float = 0.25
    codebook_loss_weight: float = 1.0
    use_l2_normlize: bool = True
    threshold_ema_dead_code: float = 2.0
    decay: float = 0.99
    momentum: float = 0.99


@dataclass(frozen=True)
class SpeakerEncoderConfig:
    input_dim: int
    out_dim: int
    latent_dim: int
    token_num: int
    fsq_levels: tuple[int, ...]
    fsq_num_quantizers: int = 1


@dataclass(frozen=True)
class BiCodecConfig:
    mel: MelConfig
    encoder: EncoderConfig
    decoder: WaveGeneratorConfig
    quantizer: QuantizerConfig
    speaker_encoder: SpeakerEncoderConfig
    prenet: DecoderConfig
    postnet: DecoderConfig

    _SECTIONS = {
        "mel_params": ("mel", MelConfig),
        "encoder": ("encoder", EncoderConfig),
        "decoder": ("decoder", WaveGeneratorConfig),
        "quantizer": ("quantizer", QuantizerConfig),
        "speaker_encoder": ("speaker_encoder", SpeakerEncoderConfig),
        "prenet": ("prenet", DecoderConfig),
        "postnet": ("postnet", DecoderConfig),
    }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "BiCodec config") -> BiCodecConfig:
        if "audio_tokenizer" in data:
            data = data["audio_tokenizer"]
        missing = sorted(set(cls._SECTIONS) - set(data))
        if missing:
            raise ConfigError(f"{where}: missing section(s) {missing} under 'audio_tokenizer'.")
        unknown = sorted(set(data) - set(cls._SECTIONS))
        if unknown:
            raise ConfigError(f"{where}: unknown section(s) {unknown}.")
        kwargs = {
            attr: _build(section_cls, data[key], f"{where}: audio_tokenizer.{key}")
            for key, (attr, section_cls) in cls._SECTIONS.items()
        }
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, path: str | Path) -> BiCodecConfig:
        return cls.from_dict(_read_yaml(path), where=str(path))

    def to_dict(self) -> dict[str, Any]:
        """The released layout: ``{"audio_tokenizer": {"mel_params": ..., ...}}``."""

        def plain(obj: Any) -> dict[str, Any]:
            return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(obj).items()}

        return {"audio_tokenizer": {key: plain(getattr(self, attr))
                                    for key, (attr, _) in self._SECTIONS.items()}}

    @property
    def hop_length(self) -> int:
        """Samples per semantic token (320 at 16 kHz, i.e. 50 tokens per second)."""
        return self.decoder.hop_length


# wav2vec2-large-xlsr-53 and the released BiCodec are 16 kHz models; nothing else can feed them.
CODEC_SAMPLE_RATE = 16000


@dataclass(frozen=True)
class AudioConfig:
    """Top-level ``config.yaml`` of a release: how prompt audio is prepared.

    Values are checked when the file is read (type and range), so a damaged or hand-edited file fails
    at load time with the key named, not later inside synthesis.
    """

    sample_rate: int = 16000
    ref_segment_duration: float = 6.0
    latent_hop_length: int = 320
    volume_normalize: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    where: str = field(default="config.yaml", repr=False, compare=False)

    def __post_init__(self) -> None:
        def fail(key: str, want: str) -> None:
            raise ConfigError(f"{self.where}: {key} must be {want}, got {getattr(self, key)!r}. Restore the "
                              f"release's value ({key}: {getattr(AudioConfig, key)}).")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        if not is_int(self.sample_rate) or self.sample_rate != CODEC_SAMPLE_RATE:
            fail("sample_rate", f"{CODEC_SAMPLE_RATE} (the wav2vec2 and BiCodec models run at 16 kHz only)")
        duration = self.ref_segment_duration
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 < duration <= 3600:
            fail("ref_segment_duration", "a number of seconds in (0, 3600]")
        if not is_int(self.latent_hop_length) or self.latent_hop_length < 1:
            fail("latent_hop_length", "an int >= 1 (samples per semantic token)")
        if self.ref_segment_length < 1:
            fail("ref_segment_duration", f"at least one hop ({self.latent_hop_length} samples)")
        if not isinstance(self.volume_normalize, bool):
            fail("volume_normalize", "true or false")

    @classmethod
    def from_yaml(cls, path: str | Path) -> AudioConfig:
        data = _read_yaml(path)
        known = {f.name for f in fields(cls)} - {"extra", "where"}
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**kwargs, extra=extra, where=str(path))

    @property
    def ref_segment_length(self) -> int:
        """Length in samples of the speaker reference clip (96000 for the release)."""
        return int(self.sample_rate * self.ref_segment_duration) // self.latent_hop_length * self.latent_hop_length
