"""A codec run directory -> a release directory (``sparktts export RUN_DIR --out MODEL_DIR``).

Writes the released layout::

    config.yaml                    audio front end (sample rate, 6 s reference, hop, volume norm)
    BiCodec/config.yaml            the trained model's audio_tokenizer config
    BiCodec/model.safetensors      weight-normed layers as weight_g / weight_v, as released
    wav2vec2-large-xlsr-53/        the frozen feature model, copied; or the jointly trained one

No ``LLM/``: the LM trainer's export adds it. Everything is written into a temporary sibling folder
that is renamed at the end, so a release never exists half-written under its final name.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from ...checkpoint import quiet_transformers_loading, read_state_dict
from ...codec.layers import weight_norm_state_dict
from ...codec.tokenizer import W2V_DIR
from ...fileio import atomic_dir, check_writable_dir
from ..config import from_dict
from ..run import CONFIG_FILE, TrainingError, find_checkpoint
from .config import CodecTrainConfig, validate

MODEL_FILE = "model.safetensors"  # what accelerate's save_state names the first prepared model


def resolve_checkpoint(run_dir: Path, checkpoint: str | None) -> Path:
    from .trainer import STATE_FILE

    return find_checkpoint(run_dir, checkpoint, STATE_FILE)


def export(run_dir: Path, out: Path, checkpoint: str | None = None) -> Path:
    """Write the release directory ``out`` from ``run_dir`` (its latest checkpoint by default); return it."""
    from safetensors.torch import save_file

    from ...testing import RELEASE_TOP_CONFIG
    from .features import FeatureStage, pretrained_dir
    from .model import CodecTrainModel, build_codec

    run_dir, out = Path(run_dir).expanduser(), Path(out).expanduser()
    cfg_path = run_dir / CONFIG_FILE
    if not cfg_path.is_file():
        raise TrainingError(f"{run_dir}: no {CONFIG_FILE}; not a codec run directory.")
    cfg = validate(from_dict(CodecTrainConfig, yaml.safe_load(cfg_path.read_text()), str(cfg_path)), str(cfg_path))
    ckpt = resolve_checkpoint(run_dir, checkpoint)
    if out.exists() and any(out.iterdir()):
        raise TrainingError(f"{out}: exists and is not empty; export to a new --out (or remove it first).")

    joint = FeatureStage.build(cfg.wav2vec2) if cfg.wav2vec2.trainable else None
    model = CodecTrainModel.build(cfg, build_codec(cfg), joint)
    model.load_state_dict(read_state_dict(ckpt / MODEL_FILE), strict=True)

    try:
        check_writable_dir(out.parent)
    except OSError as exc:
        raise TrainingError(f"{out}: cannot write there ({exc.strerror}). Choose a writable --out.") from exc
    with atomic_dir(out) as tmp:
        (tmp / "BiCodec").mkdir()
        top = {**RELEASE_TOP_CONFIG, "segment_duration": cfg.data.segment_seconds,
               "ref_segment_duration": cfg.data.ref_seconds, "volume_normalize": cfg.data.volume_normalize}
        (tmp / "config.yaml").write_text(yaml.safe_dump(top, sort_keys=False))
        (tmp / "BiCodec" / "config.yaml").write_text(yaml.safe_dump(cfg.bicodec().to_dict(), sort_keys=False))
        save_file(weight_norm_state_dict(model.codec), str(tmp / "BiCodec" / "model.safetensors"))
        if joint is not None:
            _save_joint_wav2vec2(joint, tmp / W2V_DIR)
        else:
            shutil.copytree(pretrained_dir(cfg.wav2vec2.pretrained), tmp / W2V_DIR)
    return out


def _save_joint_wav2vec2(stage, folder: Path) -> None:
    """The trained feature model via ``save_pretrained``, with its final LayerNorm put back.

    Training skipped that norm (as inference does); a fresh module keeps the checkpoint loadable by
    transformers, and the inference loader skips it again.
    """
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

    model = Wav2Vec2Model(stage.model.config)  # 16 layers: the ones trained (and used at inference)
    missing, unexpected = model.load_state_dict(stage.model.state_dict(), strict=False)
    if unexpected or any(not k.startswith("encoder.layer_norm.") for k in missing):
        raise TrainingError(f"wav2vec2 export: unexpected {unexpected}, missing {missing}.")
    with quiet_transformers_loading():  # no progress bar for one small file
        model.save_pretrained(str(folder), safe_serialization=True)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(str(folder))
