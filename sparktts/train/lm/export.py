"""An LM run directory -> a complete release (``LLM/`` + the codec its data was tokenized with).

``LLM/`` gets what the released folder holds: ``config.json``, ``generation_config.json``,
``model.safetensors`` (LoRA adapters merged) and the tokenizer files. ``config.yaml``, ``BiCodec/`` and
``wav2vec2-large-xlsr-53/`` are copied from the release recorded in the data folder's ``info.json``
(``codec_dir`` in ``run.json``), or from ``codec``: a codec whose decoder side was trained further after
the data was prepared (a ``freeze: [encoder, quantizer, speaker_encoder]`` run with a frozen wav2vec2).
It is taken only when it gives the same tokens as the recorded one: the same audio settings and
tokenizer-side configs, and every weight of wav2vec2, the encoder, the quantizer and the speaker encoder
equal to the bit (:func:`tokenizer_difference`). Everything is written into a temp folder next to
``out`` and renamed at the end, so an interrupted export leaves no half release.
"""

from __future__ import annotations

import contextlib
import filecmp
import json
import os
import shutil
from pathlib import Path

import torch

from sparktts.fileio import atomic_dir, check_writable_dir
from sparktts.train.lm.config import LMTrainConfig
from sparktts.train.lm.model import wrap_lora
from sparktts.train.lm.trainer import BASE_DIR, STATE_FILE, WEIGHTS
from sparktts.train.run import TrainingError, find_checkpoint, read_run_info

__all__ = ["export", "tokenizer_difference"]

_CODEC_PARTS = ("config.yaml", "BiCodec", "wav2vec2-large-xlsr-53")
# What decides a codec's tokens: its BiCodec modules on the tokenizer side (their config sections and
# weights), the audio settings of config.yaml, and the whole wav2vec2 folder.
_TOKENIZER_MODULES = ("encoder", "quantizer", "speaker_encoder")
_TOKENIZER_SECTIONS = ("mel_params", *_TOKENIZER_MODULES)
_AUDIO_KEYS = ("sample_rate", "ref_segment_duration", "latent_hop_length", "volume_normalize")


def _same_files(a: Path, b: Path) -> bool:
    """Whether two folders' ``*.safetensors`` files are byte for byte the same (the untouched-copy case)."""
    names = [sorted(p.name for p in d.glob("*.safetensors")) for d in (a, b)]
    return names[0] == names[1] and all(filecmp.cmp(a / n, b / n, shallow=False) for n in names[0])


def _weight_difference(a: Path, b: Path, keep: tuple[str, ...] | None) -> str | None:
    """The first tensor (top-level module in ``keep``, or any) that differs between folders a and b.

    One tensor of each side is in memory at a time: the full-size wav2vec2 is 1.2 GB a side.
    """
    from safetensors import safe_open

    if keep is None and _same_files(a, b):
        return None
    with contextlib.ExitStack() as stack:
        index = []  # per side: tensor name -> the open file holding it (headers only; tensors read below)
        for folder in (a, b):
            side = {}
            for f in sorted(folder.glob("*.safetensors")):
                handle = stack.enter_context(safe_open(str(f), framework="pt"))
                side.update({k: handle for k in handle.keys() if keep is None or k.split(".")[0] in keep})
            index.append(side)
        if index[0].keys() != index[1].keys():
            return f"{a.name}: the tensors are not the same set ({len(index[0])} vs {len(index[1])})"
        for key in sorted(index[0]):
            x, y = (side[key].get_tensor(key) for side in index)
            if x.shape != y.shape or x.dtype != y.dtype or not torch.equal(x, y):
                return f"{a.name} {key} differs"
    return None


def tokenizer_difference(recorded: str | os.PathLike, candidate: str | os.PathLike) -> str | None:
    """The first way codec release ``candidate`` would tokenize audio differently from ``recorded``, or None."""
    import yaml

    a, b = Path(recorded), Path(candidate)
    missing = [p for p in _CODEC_PARTS if not (b / p).exists()]
    if missing:
        return f"{b} is not a codec release: it lacks {missing}"
    top = [yaml.safe_load((d / "config.yaml").read_text()) or {} for d in (a, b)]
    for key in _AUDIO_KEYS:
        if top[0].get(key) != top[1].get(key):
            return f"config.yaml {key}: {top[0].get(key)!r} vs {top[1].get(key)!r}"
    codec = [(yaml.safe_load((d / "BiCodec" / "config.yaml").read_text()) or {}).get("audio_tokenizer", {})
             for d in (a, b)]
    for section in _TOKENIZER_SECTIONS:
        if codec[0].get(section) != codec[1].get(section):
            return f"BiCodec/config.yaml audio_tokenizer.{section} differs"
    for name in ("config.json", "preprocessor_config.json"):
        texts = [json.loads((d / "wav2vec2-large-xlsr-53" / name).read_text()) for d in (a, b)]
        if texts[0] != texts[1]:
            return f"wav2vec2-large-xlsr-53/{name} differs"
    for folder, keep in (("wav2vec2-large-xlsr-53", None), ("BiCodec", _TOKENIZER_MODULES)):
        difference = _weight_difference(a / folder, b / folder, keep)
        if difference:
            return difference
    return None


def export(run_dir: Path, out: Path, checkpoint: str | None = None, codec: str | os.PathLike | None = None) -> Path:
    """Write the release directory ``out`` from an LM run (its latest checkpoint by default).

    ``codec``: a codec release to ship instead of the one the data was prepared with; it must tokenize
    exactly as that one does (:func:`tokenizer_difference`).

    Raises:
        TrainingError: no checkpoint, the codec release is gone, ``codec`` would give other tokens, or
            ``out`` exists and is not empty.
    """
    from safetensors.torch import load_model
    from transformers import AutoConfig, AutoModelForCausalLM

    from sparktts.train.config import from_dict

    run_dir, out = Path(run_dir).expanduser(), Path(out).expanduser()
    info = read_run_info(run_dir)
    ckpt = find_checkpoint(run_dir, checkpoint, STATE_FILE)
    recorded = Path(info.get("codec_dir") or "")
    missing = [p for p in _CODEC_PARTS if not (recorded / p).exists()]
    if missing:
        raise TrainingError(f"{recorded}: the codec release the data was prepared with lacks {missing}; "
                            "restore it (the export copies its codec parts, or checks --codec against it)")
    if codec is None:
        codec = recorded
    else:
        codec = Path(codec).expanduser()
        difference = tokenizer_difference(recorded, codec)
        if difference:
            raise TrainingError(f"{codec}: does not tokenize as {recorded}, which the LM's data was prepared "
                                f"with ({difference}); the LM would read other tokens than it learnt. Use a codec "
                                "trained on from it with its tokenizer side frozen, or prepare the data again.")
    if out.exists() and any(out.iterdir()):
        raise TrainingError(f"{out}: exists and is not empty; choose a new --out or remove it")
    state = json.loads((ckpt / STATE_FILE).read_text())
    cfg = from_dict(LMTrainConfig, state["config"], f"{ckpt}/{STATE_FILE}")
    base = run_dir / BASE_DIR
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(base)), dtype=torch.float32)
    if cfg.lora.enabled:
        model = wrap_lora(model, cfg)
    load_model(model, str(ckpt / WEIGHTS), strict=True)
    if cfg.lora.enabled:
        model = model.merge_and_unload()

    try:
        check_writable_dir(out.parent)
    except OSError as exc:
        raise TrainingError(f"{out}: cannot write there ({exc.strerror}). Choose a writable --out.") from exc
    with atomic_dir(out) as tmp:
        llm = tmp / "LLM"
        model.save_pretrained(str(llm), safe_serialization=True)
        for f in base.iterdir():
            if f.name not in ("config.json",):  # the saved model writes its own config.json
                shutil.copy2(f, llm / f.name)
        cfg_json = json.loads((llm / "config.json").read_text())
        base_json = json.loads((base / "config.json").read_text())
        if "rope_theta" in base_json:  # keep the top-level key transformers 4.x reads
            cfg_json.setdefault("rope_theta", base_json["rope_theta"])
        (llm / "config.json").write_text(json.dumps(cfg_json, indent=2, sort_keys=True) + "\n")
        for part in _CODEC_PARTS:
            src = codec / part
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp / part)
        (tmp / "export.json").write_text(json.dumps({"run_dir": str(run_dir.resolve()), "checkpoint": ckpt.name,
                                                     "step": state["step"], "codec_dir": str(codec.resolve()),
                                                     "tokens_codec_dir": str(recorded.resolve())}, indent=2))
    return out
