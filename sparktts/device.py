"""Which torch device to run on: one rule for the API, the tokenizer and both command lines.

The rule is the original CLI's, which the README documents ("GPU if available"): no device or a bare
number means CUDA when present, else Apple MPS, else the CPU; a name is checked against this machine, so
a device that does not exist fails at once with a :class:`~sparktts.errors.ConfigError` instead of deep
inside the first forward pass.

What the CPU offers (:func:`cpu_features`: instruction sets, torch's kernels) is read here too, since the
choice of kernels and compute dtypes (:func:`resolve_codec_dtype`, :mod:`sparktts.llm.kernels`) follows it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

from sparktts.errors import ConfigError

DeviceLike = str | int | torch.device | None


def resolve_device(device: DeviceLike = None, *, name: str = "device") -> torch.device:
    """The device to run on.

    Parameters
    ----------
    device : str, int, torch.device or None
        ``None`` / a CUDA index (``0``, ``"1"``): CUDA device N when CUDA is available, else MPS, else CPU.
        Anything else as torch reads it (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``).
    name : str
        How the caller's argument is called in messages (``"device"``, ``"--device"``).

    Raises
    ------
    ConfigError
        Not a device, a device type sparktts does not run on, or one this machine does not have.
    """
    if isinstance(device, torch.device):
        return _check_available(device, name, device)
    if device is None or isinstance(device, int) or (isinstance(device, str) and device.isdigit()):
        index = int(device or 0)
        if torch.cuda.is_available():
            return _check_available(torch.device(f"cuda:{index}"), name, device)
        if torch.backends.mps.is_available():
            return torch.device(f"mps:{index}")
        return torch.device("cpu")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ConfigError(f"{name} {device!r} is not a device ({exc}); use cpu, cuda, cuda:N, mps, a CUDA index "
                          "such as 0, or None (GPU when available)") from None
    return _check_available(parsed, name, device)


def cpu_features() -> dict[str, Any]:
    """What this CPU and torch build offer: model name, instruction-set flags, torch's kernels.

    ``flags`` lists the ones that decide kernel speed (``avx2``, ``avx512f``, ``avx512_vnni``,
    ``avx512_bf16``, ``amx_bf16``, ``amx_int8``, ``amx_tile``); read from ``/proc/cpuinfo`` on Linux.
    """
    model, flags = "unknown", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
    return {
        "cpu": model,
        "flags": [f for f in wanted if f in flags],
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "quantized_engines": [e for e in torch.backends.quantized.supported_engines if e != "none"],
        "quantized_engine": torch.backends.quantized.engine,
        "mkldnn": torch.backends.mkldnn.is_available(),
        "mkl": torch.backends.mkl.is_available(),
    }


def _check_available(device: torch.device, name: str, given: object) -> torch.device:
    """``device`` if this machine has it, else a ConfigError naming the argument and what to use instead."""
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{name} {given}: CUDA is not available on this machine; use {name} cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"{name} {given}: this machine has {count} CUDA device(s); use cuda:0..cuda:{count - 1}"
                              " or cpu")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"{name} {given}: Apple MPS is not available on this machine; use {name} cpu")
    elif device.type != "cpu":
        raise ConfigError(f"{name} {given}: sparktts runs on cpu, cuda or mps, not {device.type}")
    return device


# Names of the codec stages' compute dtypes (the CLI offers defaults.CODEC_DTYPES of them).
_CODEC_DTYPE_NAMES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                      "bf16": torch.bfloat16}


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware (CUDA with bf16, or a CPU with AVX-512 BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool({"avx512_bf16", "amx_bf16"} & set(cpu_features()["flags"]))
    return False


def resolve_codec_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """A codec stage's compute dtype (wave generator, wav2vec2): None/"float32" (as released), "bfloat16",
    or "auto" (bf16 where :func:`native_bf16`, else float32).

    Raises:
        ConfigError: any other value.
    """
    if dtype is None:
        return torch.float32
    if dtype in (torch.float32, torch.bfloat16):
        return dtype
    if isinstance(dtype, str) and dtype.lower() == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    if isinstance(dtype, str) and dtype.lower() in _CODEC_DTYPE_NAMES:
        return _CODEC_DTYPE_NAMES[dtype.lower()]
    raise ConfigError(f"codec dtype must be None, 'float32', 'bfloat16' or 'auto', not {dtype!r}")


__all__ = ["DeviceLike", "cpu_features", "native_bf16", "resolve_codec_dtype", "resolve_device"]
