"""Linear-layer kernels for the LLM body on CPU, and the choice among them for the machine at hand.

Decoding one token at batch 1 reads every weight of the transformer body once, so on a CPU its speed is
set by how many bytes a weight takes and by how well the kernel streams them: fp32 4 bytes, bf16 2,
int8 1, int4 half a byte (~1.4 GB, 0.72, 0.36 and 0.18 GB for Qwen2.5-0.5B's body). Which kernel
streams best differs between CPU families (AVX2, AVX-512 VNNI, AMX) and torch builds, so the choice is
measured rather than assumed: :func:`choose_scheme` times each scheme on the model's own layer shapes,
over more weights than the CPU's caches hold, and remembers the winner per CPU, torch version, thread
count and shape in ``~/.cache/sparktts/kernels.json``.

Schemes (``quantize=`` of :func:`sparktts.llm.model.load_llm`):

* ``"int8"``: dynamic int8 (per-row weight scales, activations quantized per call) through torch's
  quantized engines; :func:`choose_scheme` also picks the engine (``fbgemm`` or ``onednn``) the weights
  are packed for.
* ``"int8-weight"``: int8 weights with per-row scales, bf16 activations (``torch._weight_int8pack_mm``).
* ``"int4"``: int4 weights, asymmetric in groups of 32 input columns with bf16 scales and offsets,
  bf16 activations (``torch._weight_int4pack_mm_for_cpu``, the kernel torchao's int4 CPU layout uses).
  The largest quality cost of these schemes, so ``"auto"`` never picks it: ask for it by name.
* ``"bf16"``: bf16 weights, bf16 activations, no integer step (the release stores its weights in bf16,
  so only activations are rounded), packed for oneDNN's kernels (AVX-512 BF16, AMX where present).
* ``"auto"``: the fastest here of ``bf16``, ``int8`` and ``int8-weight``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
import time
import warnings
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sparktts.device import cpu_features
from sparktts.fileio import atomic_write

__all__ = ["AUTO_SCHEMES", "SCHEMES", "BF16Linear", "FusedLinear", "Int4Linear", "KernelChoice", "OutputSlice",
           "WeightInt8Linear", "choose_scheme", "dynamic_int8_linear", "fused_call", "kernel_name", "make_linear"]

log = logging.getLogger(__name__)

SCHEMES = ("int8", "int8-weight", "int4", "bf16")
AUTO_SCHEMES = ("bf16", "int8", "int8-weight")  # what "auto" chooses among: no int4 (its cost is too large)
INT4_GROUP = 32
_ENGINE_LOCK = threading.Lock()  # torch's quantized engine is a process-wide setting


@contextlib.contextmanager
def _quantized_engine(engine: str | None):
    """Pack weights for ``engine``: a packed weight keeps its engine's kernel whatever the global setting."""
    if engine is None:
        yield
        return
    with _ENGINE_LOCK:
        old = torch.backends.quantized.engine
        torch.backends.quantized.engine = engine
        try:
            yield
        finally:
            torch.backends.quantized.engine = old


def dynamic_int8_linear(weight: Tensor, bias: Tensor | None, engine: str | None = None) -> nn.Module:
    """A dynamic int8 ``Linear`` (symmetric per-row weight scales) from float weights of any dtype.

    The same quantization as ``DynamicLinear.from_float`` with ``per_channel_dynamic_qconfig``, without
    its costs that add up over 168 layers at load time: a randomly initialised float layer and two
    packings of a zero weight of full size. ``engine`` (``"fbgemm"``, ``"onednn"``, ``"x86"``) packs the
    weights for that engine's kernels; None uses torch's current engine.
    """
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    from torch.ao.quantization import per_channel_dynamic_qconfig

    wide = weight.detach().float()
    observer = per_channel_dynamic_qconfig.weight()
    observer(wide)
    scales, zero_points = observer.calculate_qparams()
    with warnings.catch_warnings(), _quantized_engine(engine):  # torch warns that quantized tensors are deprecated
        warnings.simplefilter("ignore", UserWarning)
        qweight = torch.quantize_per_channel(wide, scales.double(), zero_points.long(), 0, torch.qint8)
        layer = DynamicLinear(1, 1, dtype=torch.qint8)  # packs a 1x1 placeholder
        layer.in_features, layer.out_features = wide.shape[1], wide.shape[0]
        layer.set_weight_bias(qweight, None if bias is None else bias.detach().float())
    return layer


class _WeightOnly(nn.Module):
    """A linear layer with packed low-bit weights and bf16 activations; input and output in the caller's dtype.

    ``kernel`` is the bare function (no module dispatch) the lean Qwen2 forward calls.
    """

    in_features: int
    out_features: int
    bias: Tensor | None

    def _matmul(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def kernel(self, x: Tensor) -> Tensor:
        out = self._matmul(x.reshape(-1, x.shape[-1]).to(torch.bfloat16)).to(x.dtype)
        if self.bias is not None:
            out = out + self.bias
        return out.view(*x.shape[:-1], self.out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.kernel(x)

    def dequantized(self) -> Tensor:
        """The weight as the kernel sees it, fp32 ``(out, in)`` (by running the kernel on the identity)."""
        return self._matmul(torch.eye(self.in_features, dtype=torch.bfloat16)).float().T.contiguous()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


@cache
def _onednn_bf16_packing() -> bool:
    """Whether this torch build packs bf16 linear weights for oneDNN (its AVX-512 BF16 / AMX kernels)."""
    try:
        packed = torch.ops.mkldnn._reorder_linear_weight(torch.zeros(16, 32, dtype=torch.bfloat16), 1)
        torch.ops.mkldnn._linear_pointwise(torch.zeros(1, 32, dtype=torch.bfloat16), packed, None, "none", [], "")
    except (AttributeError, RuntimeError):
        return False
    return True


class BF16Linear(_WeightOnly):
    """bf16 weights (the release stores them so: no rounding) and bf16 activations, no integer step.

    The weights are packed once into oneDNN's blocked layout where the build has it: at batch 1 a plain
    bf16 ``F.linear`` streams them at about two thirds of the packed kernel's rate (AVX-512 EPYC, 2 threads,
    Qwen2.5-0.5B's body: 49 vs 33 ms a token). The packed tensor is opaque (not a buffer, not in the
    state dict); where the build cannot pack, ``weight`` holds the plain bf16 weight and ``F.linear`` runs.
    """

    def __init__(self, weight: Tensor, bias: Tensor | None):
        super().__init__()
        w = weight.detach().to(torch.bfloat16).contiguous()
        self.out_features, self.in_features = w.shape
        self.bias = None if bias is None else bias.detach().float()
        self.packed = torch.ops.mkldnn._reorder_linear_weight(w, 1) if _onednn_bf16_packing() else None
        self.weight = None if self.packed is not None else w

    def _matmul(self, x: Tensor) -> Tensor:
        if self.packed is None:
            return nn.functional.linear(x, self.weight)
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, None, "none", [], "")


class WeightInt8Linear(_WeightOnly):
    """int8 weights, one scale per output row (symmetric, max-abs / 127); bf16 matmul."""

    def __init__(self, weight: Tensor, bias: Tensor | None):
        super().__init__()
        w = weight.detach().float()
        # Rounded to the grid of the bf16 scale the kernel uses, not of the exact one.
        scale = (w.abs().amax(1) / 127).clamp(min=1e-12).to(torch.bfloat16)
        self.register_buffer("qweight", torch.round(w / scale.float()[:, None]).clamp(-128, 127).to(torch.int8))
        self.register_buffer("scales", scale)
        self.bias = None if bias is None else bias.detach().float()
        self.out_features, self.in_features = w.shape

    def _matmul(self, x: Tensor) -> Tensor:
        return torch._weight_int8pack_mm(x, self.qweight, self.scales)

    def dequantized(self) -> Tensor:
        """The weight as the kernel sees it, fp32 ``(out, in)``."""
        return self.qweight.float() * self.scales.float()[:, None]


class Int4Linear(_WeightOnly):
    """int4 weights, asymmetric per group of ``group`` input columns (min/max over the group)."""

    def __init__(self, weight: Tensor, bias: Tensor | None, group: int = INT4_GROUP):
        super().__init__()
        w = weight.detach().float()
        out_f, in_f = w.shape
        if not int4_fits(w, group):
            raise ValueError(f"int4 needs in_features divisible by {group} and out_features by 16, "
                             f"got {tuple(w.shape)}")
        g = w.view(out_f, in_f // group, group)
        low, high = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
        # The kernel computes (q - 8) * scale + offset with bf16 scale and offset: the offset is the group's
        # minimum plus 8 steps, and q is rounded on the grid those bf16 values give.
        scale = ((high - low) / 15).clamp(min=1e-12).to(torch.bfloat16).float()
        offset = (low + 8 * scale).to(torch.bfloat16).float()
        q = torch.round((g - offset) / scale + 8).clamp(0, 15).to(torch.int32).view(out_f, in_f)
        scales_offsets = torch.cat([scale, offset], -1).transpose(0, 1).contiguous()  # (groups, out, 2)
        self.register_buffer("packed", torch._convert_weight_to_int4pack_for_cpu(q, 1))
        self.register_buffer("scales_offsets", scales_offsets.to(torch.bfloat16))
        self.bias = None if bias is None else bias.detach().float()
        self.group, self.in_features, self.out_features = group, in_f, out_f

    def _matmul(self, x: Tensor) -> Tensor:
        return torch._weight_int4pack_mm_for_cpu(x, self.packed, self.group, self.scales_offsets)


def int4_fits(weight: Tensor, group: int = INT4_GROUP) -> bool:
    """Whether the int4 kernel takes a weight of this shape (:func:`make_linear` gives others dynamic int8)."""
    out_f, in_f = weight.shape
    return in_f % group == 0 and out_f % 16 == 0


def make_linear(scheme: str, weight: Tensor, bias: Tensor | None, engine: str | None = None) -> nn.Module:
    """The layer of ``scheme`` (one of :data:`SCHEMES`) for a float ``weight`` ``(out, in)`` and ``bias``.

    A weight the int4 kernel cannot take (see :func:`int4_fits`) becomes a dynamic int8 layer instead.
    """
    if scheme == "int8":
        return dynamic_int8_linear(weight, bias, engine)
    if scheme == "int8-weight":
        return WeightInt8Linear(weight, bias)
    if scheme == "bf16":
        return BF16Linear(weight, bias)
    if scheme == "int4":
        return Int4Linear(weight, bias) if int4_fits(weight) else dynamic_int8_linear(weight, bias, engine)
    raise ValueError(f"unknown kernel scheme {scheme!r}; use one of {SCHEMES}")


class FusedLinear(nn.Module):
    """Linear layers that read the same input, run as one kernel: ``(..., in) -> (..., sum of outs)``.

    Decoding at batch 1 pays a fixed cost per kernel call (for dynamic int8 also a quantization of the
    input per call), so q/k/v and gate/up each become one call: 7 calls a layer become 4, about 2 ms a
    token for Qwen2.5-0.5B on 2 cores. All three schemes scale weights per output row (int4 per row and
    group of input columns), so the fused layer holds exactly the rows the separate layers would, and
    its outputs are bit-identical to theirs. The layers it replaces become :class:`OutputSlice` views.
    """

    def __init__(self, scheme: str, weights: list[Tensor], biases: list[Tensor | None], engine: str | None = None):
        super().__init__()
        if any(b is None for b in biases) and not all(b is None for b in biases):
            biases = [torch.zeros(w.shape[0]) if b is None else b for w, b in zip(weights, biases)]
        bias = None if biases[0] is None else torch.cat([b.detach().float() for b in biases])
        self.inner = make_linear(scheme, torch.cat([w.detach() for w in weights]), bias, engine)
        self.kernel = direct_call(self.inner) or self.inner
        bounds = [0]
        for w in weights:
            bounds.append(bounds[-1] + w.shape[0])
        self.bounds = bounds
        self._memo: tuple[Tensor, Tensor] | None = None

    def forward(self, x: Tensor) -> Tensor:
        return self.kernel(x)

    def parts(self) -> list[OutputSlice]:
        """One :class:`OutputSlice` per fused layer, in order."""
        return [OutputSlice(self, i) for i in range(len(self.bounds) - 1)]

    def _part(self, index: int, x: Tensor) -> Tensor:
        # transformers calls the parts one after another on the same input tensor: the first computes the
        # product, the next ones reuse it, the last lets it go.
        memo = self._memo
        out = memo[1] if memo is not None and memo[0] is x else self.kernel(x)
        self._memo = None if index == len(self.bounds) - 2 else (x, out)
        return out[..., self.bounds[index]: self.bounds[index + 1]]


class OutputSlice(nn.Module):
    """One layer of a :class:`FusedLinear`: columns ``bounds[i]:bounds[i + 1]`` of the fused product.

    It stands in for the original layer in the model, so transformers' own forward still runs (the fused
    product is computed once per run of calls on one input); the lean forward calls the fused kernel.
    """

    def __init__(self, fused: FusedLinear, index: int):
        super().__init__()
        object.__setattr__(self, "fused", fused)  # not a submodule: its weights belong to the parent only
        self.index = index
        self.in_features = fused.inner.in_features
        self.out_features = fused.bounds[index + 1] - fused.bounds[index]

    def forward(self, x: Tensor) -> Tensor:
        return self.fused._part(self.index, x)

    def extra_repr(self) -> str:
        return f"part {self.index} of a fused layer, in_features={self.in_features}, out_features={self.out_features}"


def fused_call(*layers: nn.Module) -> Callable[[Tensor], Tensor] | None:
    """The fused kernel when ``layers`` are all the parts of one :class:`FusedLinear`, in order; else None."""
    fused = getattr(layers[0], "fused", None)
    if not isinstance(fused, FusedLinear) or len(layers) != len(fused.bounds) - 1:
        return None
    if any(getattr(m, "fused", None) is not fused or m.index != i for i, m in enumerate(layers)):
        return None
    return fused.kernel


def direct_call(module: nn.Module) -> Callable[[Tensor], Tensor] | None:
    """The kernel of a quantized layer as a plain function (module dispatch costs ~35 us a call), or None."""
    if isinstance(module, _WeightOnly):
        return module.kernel
    params = getattr(module, "_packed_params", None)
    if getattr(params, "dtype", None) == torch.qint8 and getattr(module, "version", 0) >= 4:
        op, packed = torch.ops.quantized.linear_dynamic.default, params._packed_params
        return partial(op, W_prepack=packed, reduce_range=True)  # what the module's forward calls
    return None


def kernel_name(scheme: str, engine: str | None = None) -> str:
    """How a scheme and its int8 engine are named in timings and ``model.sparktts_kernel``: ``int8/fbgemm``."""
    return scheme if engine is None else f"{scheme}/{engine}"


@dataclasses.dataclass(frozen=True)
class KernelChoice:
    """What :func:`choose_scheme` picked, and the measured milliseconds per token of every candidate."""

    scheme: str
    engine: str | None
    ms_per_token: dict[str, float]
    machine: dict[str, Any]
    cached: bool = False


def _cache_file() -> Path:
    from sparktts.defaults import cache_dir

    return cache_dir() / "kernels.json"


def _candidates() -> list[tuple[str, str | None]]:
    engines = [e for e in ("fbgemm", "onednn") if e in torch.backends.quantized.supported_engines]
    return [("bf16", None), *(("int8", e) for e in engines), ("int8-weight", None), ("int4", None)]


def _layer_shapes(hidden: int, intermediate: int, kv_dim: int) -> list[tuple[int, int]]:
    """(out, in) of one Qwen2 decoder layer's seven linear layers."""
    return [(hidden, hidden), (kv_dim, hidden), (kv_dim, hidden), (hidden, hidden),
            (intermediate, hidden), (intermediate, hidden), (hidden, intermediate)]


def _time_candidate(scheme: str, engine: str | None, shapes: list[tuple[int, int]], repeats: int) -> float:
    """Seconds per pass over ``shapes`` at batch 1 (median of ``repeats``), with random weights."""
    gen = torch.Generator().manual_seed(0)
    layers = [make_linear(scheme, torch.randn(o, i, generator=gen) * 0.02, None, engine) for o, i in shapes]
    calls = [(direct_call(m) or m, torch.randn(1, i, generator=gen)) for m, (_, i) in zip(layers, shapes)]
    times = []
    for _ in range(repeats + 1):  # the first pass warms the kernels up
        t = time.perf_counter()
        for call, x in calls:
            call(x)
        times.append(time.perf_counter() - t)
    return sorted(times[1:])[len(times[1:]) // 2]


def choose_scheme(hidden: int, intermediate: int, kv_dim: int, num_layers: int, *,
                  candidates: tuple[str, ...] = AUTO_SCHEMES, use_cache: bool = True) -> KernelChoice:
    """Time each scheme (and int8 engine) on these layer shapes and return the fastest of ``candidates``.

    The weights timed are random, in the model's shapes, and span at least 256 MB of int8 (or the
    whole model, if smaller), so the timing includes reading them from memory as decoding does. Results
    are cached per CPU, torch version, thread count and shape; ``use_cache=False`` measures again.
    """
    machine = cpu_features()
    key = json.dumps([machine["cpu"], machine["flags"], machine["torch"], torch.get_num_threads(),
                      hidden, intermediate, kv_dim, num_layers, list(candidates)])
    path = _cache_file()
    if use_cache:
        with contextlib.suppress(OSError, ValueError):
            hit = json.loads(path.read_text()).get(key)
            if hit:
                return KernelChoice(hit["scheme"], hit["engine"], hit["ms_per_token"], machine, cached=True)
    one = _layer_shapes(hidden, intermediate, kv_dim)
    per_layer = sum(o * i for o, i in one)
    layers = max(1, min(num_layers, -(-(256 << 20) // per_layer)))
    shapes, scale = one * layers, num_layers / layers
    timings: dict[str, float] = {}
    for scheme, engine in _candidates():
        name = kernel_name(scheme, engine)
        try:
            timings[name] = 1e3 * scale * _time_candidate(scheme, engine, shapes, repeats=3)
        except (RuntimeError, ValueError) as exc:  # a kernel this build or CPU lacks
            log.info("kernel %s unavailable here: %s", name, exc)
    allowed = {n: t for n, t in timings.items() if n.split("/")[0] in candidates}
    if not allowed:
        raise RuntimeError(f"none of the kernels {list(candidates)} runs on this machine")
    best = min(allowed, key=allowed.get)
    scheme, _, engine = best.partition("/")
    choice = KernelChoice(scheme, engine or None, timings, machine)
    log.info("kernel choice for this CPU: %s (ms per token: %s)", best,
             ", ".join(f"{n} {t:.1f}" for n, t in timings.items()))
    with contextlib.suppress(OSError, ValueError):
        stored = json.loads(path.read_text()) if path.is_file() else {}
        stored[key] = {"scheme": choice.scheme, "engine": choice.engine, "ms_per_token": timings}
        with atomic_write(path, "w") as f:
            f.write(json.dumps(stored, indent=1))
    return choice
