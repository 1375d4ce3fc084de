"""An LM run directory -> a complete release (``LLM/`` + the codec its data was tokenized with).

``LLM/`` gets what the released folder holds: ``config.json``, ``generation_config.json``,
``model.safetensors`` (LoRA adapters merged) and the tokenizer files. ``config.yaml``, ``BiCodec/`` and
``wav2vec2-large-xlsr-53/`` are copied from the release recorded in the data folder's ``info.json``
(``codec_dir`` in ``run.json``). Everything is written into a temp folder next to ``out`` and renamed at
the end, so an interrupted export leaves no half release.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from sparktts.fileio import atomic_dir, check_writable_dir
from sparktts.train.lm.config import LMTrainConfig
from sparktts.train.lm.model import wrap_lora
from sparktts.train.lm.trainer import BASE_DIR, STATE_FILE, WEIGHTS
from sparktts.train.run import TrainingError, find_checkpoint, read_run_info

__all__ = ["export"]

_CODEC_PARTS = ("config.yaml", "BiCodec", "wav2vec2-large-xlsr-53")


def export(run_dir: Path, out: Path, checkpoint: str | None = None) -> Path:
    """Write the release directory ``out`` from an LM run (its latest checkpoint by default).

    Raises:
        TrainingError: no checkpoint, the codec release is gone, or ``out`` exists and is not empty.
    """
    from safetensors.torch import load_model
    from transformers import AutoConfig, AutoModelForCausalLM

    from sparktts.train.config import from_dict

    run_dir, out = Path(run_dir).expanduser(), Path(out).expanduser()
    info = read_run_info(run_dir)
    ckpt = find_checkpoint(run_dir, checkpoint, STATE_FILE)
    codec = Path(info.get("codec_dir") or "")
    missing = [p for p in _CODEC_PARTS if not (codec / p).exists()]
    if missing:
        raise TrainingError(f"{codec}: the codec release the data was prepared with lacks {missing}; "
                            "restore it (the export copies its codec parts)")
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
                                                     "step": state["step"], "codec_dir": str(codec)}, indent=2))
    return out
