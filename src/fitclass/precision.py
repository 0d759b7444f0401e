"""The one device and precision policy every path that runs a model follows.

Training (on accelerate), the loop's evaluation, `encode` (feature cache, linear probe),
co-teaching and loaded runs (predict, evaluate, ensemble members, the audit's proxies,
self-training's pseudo-labels) all run a `Policy`: the module sits on `policy.device` with
fp32 master weights, and forward passes run under `policy.autocast()` in the recipe's
precision (`train.precision`). A ground-floor module: it imports only torch and errors.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from fitclass.errors import RunError

#: What `--device` accepts.
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
#: What `--precision` / `train.precision` accept.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: The attention implementation asked for where a model supports it.
ATTENTION = "sdpa"

Model = TypeVar("Model")


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def devices_present() -> list[str]:
    """The devices this machine offers, as `--device` spells them."""
    present = ["cpu"]
    if torch.cuda.is_available():
        present += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if mps_available():
        present.append("mps")
    return present


def resolve_device(name: str | None = None, option: str = "--device") -> torch.device:
    """`auto` (or None): cuda if available, else mps, else cpu; otherwise the named device,
    which must be present (`option` names the setting in the error)."""
    choice = (name or "auto").strip().lower()
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available() else "cpu")
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", choice):
        raise RunError(f"{option} {name!r}: expected {DEVICE_CHOICES}")
    present = devices_present()
    device = torch.device(choice)
    if device.type == "cuda" and (not torch.cuda.is_available()
                                  or (device.index or 0) >= torch.cuda.device_count()):
        raise RunError(f"{option} {name!r}: that CUDA device is not available on this machine "
                       f"(devices present: {', '.join(present)}); use {option} auto or cpu")
    if device.type == "mps" and not mps_available():
        raise RunError(f"{option} {name!r}: MPS is not available on this machine (devices "
                       f"present: {', '.join(present)}); use {option} auto or cpu")
    return device


def resolve_precision(precision: str | None, device: torch.device,
                      option: str = "train.precision") -> str:
    """`fp32`, `bf16` or `fp16`. `auto` (or None): bf16 on GPUs that have it, fp16 on older
    GPUs, fp32 elsewhere (CPU autocast only pays off for training on recent CPUs)."""
    choice = precision or "auto"
    if choice not in PRECISIONS:
        raise RunError(f"{option} {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if choice != "auto":
        return choice
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


@dataclass(frozen=True)
class Policy:
    """Where a model runs and in which precision its forward passes compute."""

    device: torch.device
    precision: str = "fp32"  # fp32 | bf16 | fp16 (resolved, never `auto`)

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return AUTOCAST_DTYPES.get(self.precision)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The forward-pass context: nothing for fp32, else torch autocast on the device."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def place(self, module: nn.Module, *, train: bool = False) -> nn.Module:
        """`module` on the device in fp32 (master weights), in eval mode unless `train`."""
        module.to(device=self.device, dtype=torch.float32)
        module.train(train)
        return module

    def describe(self) -> dict[str, Any]:
        """What environment.json and evaluate's output record."""
        dtype = self.autocast_dtype or torch.float32
        return {"device": str(self.device), "precision": self.precision,
                "compute_dtype": str(dtype).removeprefix("torch."), "weights_dtype": "float32"}


def make_policy(precision: str | None = None, device: str | torch.device | None = None
                ) -> Policy:
    """The policy for a precision (a recipe's `train.precision` or `--precision`) and an
    optional `--device` override (default auto)."""
    resolved = device if isinstance(device, torch.device) else resolve_device(device)
    return Policy(resolved, resolve_precision(precision, resolved, "--precision"))


#: What runs a model when nothing chose a policy: fp32 on the module's own device.
FP32_CPU = Policy(torch.device("cpu"), "fp32")


def training_policy(precision: str) -> Policy:
    """The policy the training loop runs (accelerate uses the GPU when there is one, else
    the CPU, which is also what makes `torchrun` start gloo DDP on CPUs)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return Policy(device, resolve_precision(precision, device))


def load_pretrained(load: Callable[..., Model], *args: Any, **kwargs: Any) -> Model:
    """`load(*args, dtype=float32, attn_implementation="sdpa", **kwargs)` (a Hugging Face
    `from_pretrained` / `from_config`): fp32 master weights whatever dtype the checkpoint or
    its config says, SDPA attention where the architecture has it, else eager (what such an
    architecture runs anyway; named, because a failed first try leaves `sdpa` written into a
    config object it was given)."""
    try:
        return load(*args, dtype=torch.float32, attn_implementation=ATTENTION, **kwargs)
    except (ValueError, ImportError) as error:
        if ATTENTION not in str(error) and "attn_implementation" not in str(error):
            raise
        return load(*args, dtype=torch.float32, attn_implementation="eager", **kwargs)


@contextlib.contextmanager
def inference(module: nn.Module, policy: Policy) -> Iterator[torch.device]:
    """Eval mode, no autograd, the policy's autocast; yields the device inputs go to (the
    module's own, which the policy placed it on)."""
    module.eval()
    device = next((p.device for p in module.parameters()), policy.device)
    with torch.inference_mode(), Policy(device, policy.precision).autocast():
        yield device
