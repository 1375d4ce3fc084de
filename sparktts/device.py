"""Which torch device to run on: one rule for the API, the tokenizer and both command lines.

The rule is the original CLI's, which the README documents ("GPU if available"): no device or a bare
number means CUDA when present, else Apple MPS, else the CPU; a name is checked against this machine, so
a device that does not exist fails at once with a :class:`~sparktts.errors.ConfigError` instead of deep
inside the first forward pass.
"""

from __future__ import annotations

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


__all__ = ["DeviceLike", "resolve_device"]
