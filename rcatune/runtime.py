"""Where this process runs: device, precision, world size and rank, progress on or off.

Built once at the start of a run (`Runtime.detect`) and handed to whatever needs it, instead of
`on_gpu` and `progress` flags threaded through every signature. Distributed launchers (torchrun,
accelerate) set WORLD_SIZE / RANK / LOCAL_RANK, which it reads.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict

from rcatune.errors import ConfigError

# Device files a CUDA (or ROCm, or WSL) driver makes. Where none exists torch cannot see a GPU either, and a run
# that never trains (prepare, deploy, a rollback) need not import torch to learn that: about 1.5 s of its start-up.
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia/version", "/dev/kfd", "/dev/dxg")


def cuda_available() -> bool:
    """torch.cuda.is_available(), without importing torch where no GPU driver is present (or torch already
    is imported)."""
    import sys

    if "torch" not in sys.modules and not any(os.path.exists(path) for path in GPU_DEVICE_FILES):
        return False
    import torch

    return torch.cuda.is_available()


class Runtime(BaseModel):
    model_config = ConfigDict(frozen=True)

    device: str = "cpu"  # cpu | cuda
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    progress: bool = True

    @classmethod
    def detect(cls, device: str = "auto", progress: bool = True) -> "Runtime":
        """The runtime of this process; `device` is auto | cpu | cuda."""
        has_cuda = device != "cpu" and cuda_available()
        if device == "cuda" and not has_cuda:
            raise ConfigError("device: cuda was asked for, but torch sees no CUDA GPU here (device=auto uses one "
                              "when there is one)")
        chosen = "cuda" if device in ("auto", "cuda") and has_cuda else "cpu"
        env = os.environ
        return cls(device=chosen, world_size=int(env.get("WORLD_SIZE", 1)), rank=int(env.get("RANK", 0)),
                   local_rank=int(env.get("LOCAL_RANK", 0)), progress=progress)

    @property
    def on_gpu(self) -> bool:
        return self.device == "cuda"

    @property
    def is_main(self) -> bool:
        """The process that writes files, logs and registers (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def torch_dtype(self, dtype: str):
        """The dtype to compute in: bf16/fp16 on a GPU as configured; fp32 on a CPU (bf16 there is slow and
        lossy)."""
        import torch

        if not self.on_gpu:
            return torch.float32
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]

    def mixed_precision(self, dtype: str) -> dict[str, bool]:
        """Trainer flags for `dtype`: {'bf16': ..., 'fp16': ...}."""
        return {"bf16": self.on_gpu and dtype == "bfloat16", "fp16": self.on_gpu and dtype == "float16"}
