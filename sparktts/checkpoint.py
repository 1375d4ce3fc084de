"""Finding a release directory and loading weights strictly.

A model source is a local directory first; the name ``builtin`` is the small model trained with this
toolkit and kept in the checkout (:func:`builtin_model_dir`); anything else that looks like a hub repo
id (``SparkAudio/Spark-TTS-0.5B``) is fetched with ``huggingface_hub.snapshot_download`` when online.
Weights are read from safetensors, or from PyTorch files with ``weights_only=True`` (never arbitrary
unpickling). Loading is strict: missing, unexpected and mis-shaped keys are listed in one error.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from .codec.layers import WEIGHT_NORM_TYPES, fold_weight_norm, split_weight_norm
from .errors import CheckpointError

DEFAULT_REPO_ID = "SparkAudio/Spark-TTS-0.5B"
RELEASE_LAYOUT = ("config.yaml", "BiCodec/config.yaml", "BiCodec/model.safetensors",
                  "wav2vec2-large-xlsr-53/config.json")
BUILTIN = "builtin"
BUILTIN_ENV = "SPARKTTS_BUILTIN"
_HOW_TO_GET = (
    "Download it on a machine with internet access, e.g. "
    "`huggingface-cli download SparkAudio/Spark-TTS-0.5B --local-dir pretrained_models/Spark-TTS-0.5B`, "
    "and pass that directory."
)


def builtin_model_dir() -> Path:
    """Where the built-in release lives: ``$SPARKTTS_BUILTIN``, else ``data/builtin/release`` of the checkout.

    It is an ordinary release in the released layout, built by ``data/builtin/build.py``; only its
    name is special. A wheel install has no ``data/`` folder: set ``SPARKTTS_BUILTIN`` there.
    """
    env = os.environ.get(BUILTIN_ENV)
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[1] / "data" / "builtin" / "release"


def resolve_model_dir(name_or_path: str | os.PathLike, *, require: Iterable[str] = (),
                      local_dir: str | os.PathLike | None = None) -> Path:
    """Return a local release directory for a path or a hub repo id.

    ``require`` lists relative paths that must exist in the directory (checked with a clear error);
    ``local_dir`` is where a hub download is placed (default: the hub cache).
    """
    path = Path(name_or_path).expanduser()
    if str(name_or_path) == BUILTIN and not path.is_dir():
        path = builtin_model_dir()
        if not path.is_dir():
            raise CheckpointError(f"builtin: the built-in model is not at {path}. Build it with "
                                  f"`python data/builtin/build.py --work WORK --out {path}`, point "
                                  f"{BUILTIN_ENV} at a copy, or pass a release directory.")
    if path.is_dir():
        _check_layout(path, require)
        return path
    text = str(name_or_path)
    looks_like_repo = text.count("/") == 1 and not text.startswith((".", "/", "~")) and not path.exists()
    if not looks_like_repo:
        raise CheckpointError(f"{path}: model directory not found. {_HOW_TO_GET}")
    try:
        from huggingface_hub import snapshot_download

        local = Path(snapshot_download(repo_id=text, local_dir=local_dir))
    except Exception as exc:  # offline, unknown repo, no permission...
        raise CheckpointError(
            f"'{text}' is not a local directory and could not be downloaded from the hub "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). {_HOW_TO_GET}"
        ) from exc
    _check_layout(local, require)
    return local


@contextlib.contextmanager
def quiet_transformers_loading() -> Iterator[None]:
    """Silence transformers' per-load progress bars and unused-weight notices inside the block."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _check_layout(root: Path, require: Iterable[str]) -> None:
    missing = [r for r in require if not (root / r).exists()]
    if missing:
        raise CheckpointError(
            f"{root}: not a complete Spark-TTS release; missing {missing}. Expected the released layout "
            f"(config.yaml, BiCodec/, LLM/, wav2vec2-large-xlsr-53/)."
        )


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a weight file: ``.safetensors``, or ``.pt``/``.bin``/``.ckpt`` with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weight file not found. {_HOW_TO_GET}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise CheckpointError(
                f"{path}: cannot read safetensors file ({exc}); it is truncated or corrupt. "
                f"Download it again."
            ) from exc
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read weights safely ({exc}).") from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a mapping of tensor names to tensors.")
    return obj


def cast_weights(folder: str | os.PathLike, dtype: torch.dtype, source: torch.dtype = torch.float32) -> list[Path]:
    """Store every ``source`` tensor of the safetensors files under ``folder`` as ``dtype``, in place.

    A release stored in bfloat16 is half the bytes and loads like a float32 one: the loaders copy the
    weights into modules of the dtype they compute in. Each file is replaced whole (its metadata kept);
    returns the files rewritten.
    """
    from safetensors import safe_open
    from safetensors.torch import save

    from .fileio import atomic_write

    written = []
    for path in sorted(Path(folder).rglob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if not any(v.dtype == source for v in tensors.values()):
            continue
        blob = save({k: v.to(dtype) if v.dtype == source else v for k, v in tensors.items()}, metadata=metadata)
        with atomic_write(path) as fh:
            fh.write(blob)
        written.append(path)
    return written


def _weight_norm_prefixes(model: nn.Module) -> set[str]:
    return {name for name, m in model.named_modules() if isinstance(m, WEIGHT_NORM_TYPES)}


def fold_state_dict(model: nn.Module, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Replace ``X.weight_g``/``X.weight_v`` pairs by ``X.weight`` for the model's weight-normed layers."""
    wn = _weight_norm_prefixes(model)
    out = dict(state_dict)
    for prefix in wn:
        g, v = f"{prefix}.weight_g", f"{prefix}.weight_v"
        if g in out and v in out:
            if out[g].dim() != out[v].dim():
                continue  # reported as a shape mismatch below
            out[f"{prefix}.weight"] = fold_weight_norm(out.pop(g), out.pop(v))
    return out


def unfold_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The model's state dict as released: weight-normed layers stored as ``weight_g``/``weight_v``."""
    wn = _weight_norm_prefixes(model)
    out: dict[str, Tensor] = {}
    for key, value in model.state_dict().items():
        prefix, _, leaf = key.rpartition(".")
        if prefix in wn and leaf == "weight":
            out[f"{prefix}.weight_g"], out[f"{prefix}.weight_v"] = split_weight_norm(value)
        else:
            out[key] = value.contiguous()
    return out


def _names_in_file(model: nn.Module, missing: list[str], unexpected: list[str]) -> tuple[list[str], list[str]]:
    """Report weight-normed layers by the keys the file has: ``X.weight_g`` / ``X.weight_v``, not ``X.weight``.

    Folding turns a complete pair into ``X.weight``; half a pair stays unfolded, so the comparison sees
    ``X.weight`` missing and the half that is there "unexpected". The file never had an ``X.weight``: name
    the half that is absent as missing, and the present half as expected.
    """
    wn = _weight_norm_prefixes(model)
    present = set(unexpected)
    out_missing: list[str] = []
    for key in missing:
        prefix, _, leaf = key.rpartition(".")
        if prefix in wn and leaf == "weight":
            pair = (f"{prefix}.weight_g", f"{prefix}.weight_v")
            out_missing += [k for k in pair if k not in present]
            present.difference_update(pair)
        else:
            out_missing.append(key)
    return out_missing, [k for k in unexpected if k in present]


def load_strict(
    model: nn.Module,
    state_dict: dict[str, Tensor],
    source: str,
    *,
    optional: Iterable[str] = (),
    ignored: Iterable[str] = (),
) -> None:
    """Load ``state_dict`` (released layout) into ``model``; any mismatch is a :class:`CheckpointError`.

    ``optional``: key suffixes that may be absent (training-only buffers); ``ignored``: keys accepted in
    the file but not loaded (buffers the model computes itself).
    """
    optional = tuple(optional)
    ignored = set(ignored)
    sd = fold_state_dict(model, {k: v for k, v in state_dict.items() if k not in ignored})
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd and not k.endswith(optional)]
    unexpected = [k for k in sd if k not in expected]
    missing, unexpected = _names_in_file(model, missing, unexpected)
    wrong = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(expected[k].shape)}"
             for k in sd if k in expected and sd[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        def show(items: list[str]) -> str:
            head = ", ".join(items[:8])
            return head + (f", ... ({len(items)} in all)" if len(items) > 8 else "")

        parts = []
        if missing:
            parts.append(f"missing keys: {show(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {show(unexpected)}")
        if wrong:
            parts.append(f"wrong shapes: {show(wrong)}")
        raise CheckpointError(
            f"{source}: weights do not match the model built from its config.yaml; " + "; ".join(parts)
            + ". The file and config.yaml come from different models, or the file is damaged."
        )
    for k, v in sd.items():
        if not torch.is_floating_point(v) and torch.is_floating_point(expected[k]):
            raise CheckpointError(f"{source}: {k} has dtype {v.dtype}, expected a floating-point tensor.")
        if torch.is_floating_point(v) and not torch.isfinite(v).all():
            raise CheckpointError(f"{source}: {k} contains NaN or inf values; the file is corrupt.")
    model.load_state_dict(sd, strict=False)
