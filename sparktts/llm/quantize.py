"""Quantized language models on CPU (int8 or int4 linear layers), and loading straight into them.

The transformer body's linear layers get low-bit weights, in one of the schemes of
:mod:`sparktts.llm.kernels` (default: int8 with one scale per output row, activations quantized on the
fly by torch's dynamic-quantization kernels). Everything else in the body computes in fp32. The
embedding table keeps its stored dtype (bf16 in the release) with fp32 lookups, which is exact since
it holds bf16 values either way. The LM head is left to
:class:`sparktts.llm.decode.FastDecoder`, which slices it.

:func:`load_int8` builds the model without its weights and reads the checkpoint one tensor at a time,
quantizing each linear layer as it arrives, so the float model never exists in memory: peak memory
is the int8 model plus one tensor. (transformers maps the whole file, and every page quantization reads
stays resident while any tensor of the file is alive.) The embedding table is left mapped: only the
rows of tokens actually looked up are ever read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparktts.errors import CheckpointError

from .kernels import FusedLinear, kernel_name, make_linear
from .qwen2 import decoder_body

__all__ = ["load_int8", "quantize_int8"]


class _Float32Embedding(nn.Module):
    """An embedding table kept in its stored dtype whose lookups come out in fp32."""

    def __init__(self, weight: Tensor, padding_idx: int | None):
        super().__init__()
        self.weight = weight if isinstance(weight, nn.Parameter) else nn.Parameter(weight, requires_grad=False)
        self.padding_idx = padding_idx

    def forward(self, ids: Tensor) -> Tensor:
        return F.embedding(ids, self.weight, self.padding_idx).float()


class _Float32Head(nn.Module):
    """An LM head (possibly tied to a bf16 embedding) taking and returning fp32."""

    def __init__(self, weight: Tensor, bias: Tensor | None):
        super().__init__()
        self.weight = weight if isinstance(weight, nn.Parameter) else nn.Parameter(weight, requires_grad=False)
        self.bias = bias

    def forward(self, hidden: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias.to(self.weight.dtype)
        return F.linear(hidden.to(self.weight.dtype), self.weight, bias).float()


def _finish(model: nn.Module, table: Tensor, head_weight: Tensor | None, head_bias: Tensor | None) -> None:
    """Install the embedding table and the LM head (tied to the table when ``head_weight`` is None)."""
    body = decoder_body(model)
    padding_idx = getattr(body.embed_tokens, "padding_idx", None)
    table = nn.Parameter(table, requires_grad=False)
    weight = table if head_weight is None else nn.Parameter(head_weight, requires_grad=False)
    if table.dtype == torch.float32:
        embedding = nn.Embedding(*table.shape, padding_idx=padding_idx, device="meta")
        embedding.weight = table
        head = nn.Linear(weight.shape[1], weight.shape[0], bias=head_bias is not None, device="meta")
        head.weight, head.bias = weight, head_bias
    else:  # bf16/fp16 storage: lookups and logits come out in fp32
        embedding = _Float32Embedding(table, padding_idx)
        head = _Float32Head(weight, head_bias)
    body.embed_tokens = embedding
    model.set_output_embeddings(head)
    model.config.dtype = torch.float32


# Layers of a decoder layer that read the same input: (parent, name of the fused layer, the layers).
_FUSED = (("self_attn", "fused_qkv", ("q_proj", "k_proj", "v_proj")),
          ("mlp", "fused_gate_up", ("gate_proj", "up_proj")))


def _fuse_projections(body: nn.Module, names: dict[nn.Module, str], read: Callable[[str, bool], Tensor],
                      scheme: str, engine: str | None) -> None:
    """q/k/v and gate/up of every decoder layer as one :class:`~sparktts.llm.kernels.FusedLinear` each."""
    for layer in getattr(body, "layers", []):
        for parent_name, fused_name, parts in _FUSED:
            parent = getattr(layer, parent_name, None)
            children = [getattr(parent, n, None) for n in parts]
            if parent is None or not all(type(c) is nn.Linear for c in children):
                continue
            weights = [read(f"{names[c]}.weight", True) for c in children]
            biases = [read(f"{names[c]}.bias", True) if c.bias is not None else None for c in children]
            fused = FusedLinear(scheme, weights, biases, engine)
            setattr(parent, fused_name, fused)
            for name, part in zip(parts, fused.parts()):
                setattr(parent, name, part)


def _convert(model: nn.Module, read: Callable[[str, bool], Tensor], scheme: str = "int8",
             engine: str | None = None, fuse: bool = True) -> str:
    """Turn ``model`` into its quantized form, taking every tensor by name from ``read(key, copy)``.

    Returns the embedding table's key (the one tensor read with ``copy=False``).

    With ``fuse``, q/k/v and gate/up of each decoder layer become one fused layer each (bit-identical
    outputs, fewer kernel calls). The body's other linear layers become layers of ``scheme``
    (:func:`sparktts.llm.kernels.make_linear`); its
    other parameters (norms) fp32; the rotary tables are
    rebuilt from the config; the embedding table (read with ``copy=False``) and the head are installed by
    :func:`_finish`. The model's own tensors may be on the meta device: none of them is used.
    """
    body = decoder_body(model)
    head = model.get_output_embeddings()
    names = {m: n for n, m in model.named_modules()}
    if fuse:
        _fuse_projections(body, names, read, scheme, engine)
    for module in list(body.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.Linear:
                key = f"{names[child]}."
                bias = read(key + "bias", True) if child.bias is not None else None
                setattr(module, name, make_linear(scheme, read(key + "weight", True), bias, engine))
    table_key = f"{names[body.embed_tokens]}.weight"
    table = read(table_key, False)
    for module in body.modules():
        if module is body.embed_tokens:
            continue
        for name, _param in list(module.named_parameters(recurse=False)):
            setattr(module, name, nn.Parameter(read(f"{names[module]}.{name}", True).float(), requires_grad=False))
    # Rotary tables are computed from the config, not stored: rebuild that module on the CPU.
    rotary = getattr(body, "rotary_emb", None)
    if rotary is not None:
        body.rotary_emb = type(rotary)(config=model.config)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    head_weight = None if tied else read(f"{names[head]}.weight", True)
    head_bias = read(f"{names[head]}.bias", True) if getattr(head, "bias", None) is not None else None
    _finish(model, table, head_weight, head_bias)
    model.sparktts_kernel = kernel_name(scheme, engine)  # what SparkTTS and the benchmarks report
    return table_key


def quantize_int8(model: nn.Module, scheme: str = "int8", engine: str | None = None, fuse: bool = True
                  ) -> nn.Module:
    """Quantize a loaded transformers causal LM in place (see the module docstring); returns it.

    ``scheme``/``engine``: as :func:`sparktts.llm.kernels.make_linear` takes them; ``fuse``: q/k/v and
    gate/up as one kernel call each (:class:`sparktts.llm.kernels.FusedLinear`). Prefer
    :func:`load_int8` when loading from disk: this function needs the float model in memory first.
    """
    state = model.state_dict()
    # Copies: a surviving view of a mapped checkpoint would keep all of its pages resident.
    _convert(model, lambda key, copy: state[key].detach().clone(), scheme, engine, fuse)
    return model


def _weight_files(path: Path) -> dict[str, Path]:
    """Tensor name -> safetensors file, for a single file or a sharded checkpoint."""
    from safetensors import safe_open

    index = path / "model.safetensors.index.json"
    if index.is_file():
        return {k: path / f for k, f in json.loads(index.read_text())["weight_map"].items()}
    single = path / "model.safetensors"
    if not single.is_file():
        raise CheckpointError(f"{path}: no model.safetensors (int8 loading reads safetensors checkpoints).")
    with safe_open(str(single), "pt") as f:
        return {k: single for k in f.keys()}


def _read(files: dict[str, Path], key: str, *, copy: bool = True) -> Tensor:
    """One tensor. safetensors maps the file and returns a view of the mapping: a copy lets the mapping
    go at once (no page stays resident); ``copy=False`` keeps the view, whose pages are only read (and
    resident) where the tensor is used."""
    from safetensors import safe_open

    with safe_open(str(files[key]), "pt") as f:
        tensor = f.get_tensor(key)
    return tensor.clone() if copy else tensor


_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def finite_in_file(file: Path, key: str, chunk_bytes: int = 1 << 24) -> bool:
    """Whether a floating tensor of a safetensors file holds only finite values, read in pieces with plain
    file reads (the page cache, not this process's memory, holds what was read). Non-float: True."""
    with open(file, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        entry = json.loads(f.read(header_len))[key]
        dtype = _SAFETENSORS_DTYPES.get(entry["dtype"])
        if dtype is None:
            return True
        start, end = entry["data_offsets"]
        f.seek(8 + header_len + start)
        step = chunk_bytes - chunk_bytes % dtype.itemsize
        buf = bytearray(step)
        for offset in range(0, end - start, step):
            n = f.readinto(memoryview(buf)[: min(step, end - start - offset)])
            if not bool(torch.isfinite(torch.frombuffer(buf, dtype=dtype, count=n // dtype.itemsize)).all()):
                return False
    return True


def load_int8(path: str | os.PathLike, scheme: str = "int8", engine: str | None = None, fuse: bool = True
              ) -> nn.Module:
    """Build the causal LM of an ``LLM/`` directory directly in quantized form (CPU), tensor by tensor.

    ``scheme``: ``"int8"`` (dynamic int8, packed for ``engine``), ``"int8-weight"``, ``"int4"`` or
    ``"bf16"`` (weight-only, bf16 activations); see :mod:`sparktts.llm.kernels`.

    Raises:
        CheckpointError: missing, unexpected or misshapen tensors.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    path = Path(path)
    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    files = _weight_files(path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    head = model.get_output_embeddings()
    head_key = next(n for n, m in model.named_modules() if m is head) + ".weight"  # "lm_head.weight"
    expected = {k: v.shape for k, v in model.state_dict().items()}
    tied = bool(getattr(config, "tie_word_embeddings", False))
    needed = {k for k in expected if not (tied and k == head_key) and "rotary_emb" not in k}
    missing = sorted(needed - set(files))
    if missing:
        raise CheckpointError(f"{path}: the checkpoint lacks {missing[:5]} ({len(missing)} in all); it does "
                              "not belong to this config.json or is incomplete.")

    def read(key: str, copy: bool) -> Tensor:
        tensor = _read(files, key, copy=copy)
        if tuple(tensor.shape) != tuple(expected[key]):
            raise CheckpointError(f"{path}: {key} has shape {tuple(tensor.shape)}, config.json implies "
                                  f"{tuple(expected[key])}.")
        return tensor

    # The embedding table stays a view of the file (copy=False): a step reads one row per token, so only
    # the rows of tokens ever used become resident (~1 MB in a session instead of the table's 300 MB).
    table_key = _convert(model, read, scheme, engine, fuse)
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:
        raise CheckpointError(f"{path}: no weights read for {leftover[:5]}; unsupported model layout.")
    # Checking the mapped table through the mapping would make all of its pages resident (+300 MB for the
    # release): it is checked from the file, and load_llm's finiteness check uses this answer.
    model.get_input_embeddings().weight.sparktts_finite = finite_in_file(files[table_key], table_key)
    if (path / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(str(path), local_files_only=True)
    return model.eval()
