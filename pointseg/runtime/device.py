"""Device choice: one `resolve_device` for training (per DDP rank), evaluation and prediction."""

from __future__ import annotations

import torch

from pointseg.errors import ConfigError


def resolve_device(name: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """`None`/`"auto"` → `cuda:<local_rank>` if CUDA is available, else `cpu`; otherwise
    `torch.device(name)` (a bare `cuda` becomes `cuda:<local_rank>`). Never hard-coded.

    A bad name, or a CUDA device on a machine without CUDA, is a ConfigError naming the fix.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(
            f"bad --device {name!r}: not a valid device ({exc}); use auto, cpu, cuda or cuda:<index>"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {name}: CUDA is not available on this machine; use --device cpu or auto"
            )
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device
