"""A stand-in `timm` package for the tests: timm does not import on the CPU machines this is
tested on (torchvision does not), so these three entry points fitclass calls
(`create_model(name, pretrained, num_classes=0)`, `data.resolve_model_data_config`,
`models.group_parameters`) stand in its place."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch import nn

MEAN, STD = (0.3, 0.4, 0.5), (0.2, 0.25, 0.3)


class TinyTimmNet(nn.Module):
    """A timm-shaped CNN: stem, `layer1`/`layer2` blocks (as in timm's ResNet), pooled output
    when `num_classes=0`."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn_stem = nn.BatchNorm2d(8)
        self.layer1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, stride=2),
                                    nn.BatchNorm2d(16), nn.ReLU())
        self.pretrained_cfg = {"input_size": (3, 20, 20), "mean": MEAN, "std": STD,
                               "crop_pct": 0.9}

    def group_matcher(self, coarse: bool = False) -> dict[str, str]:
        return {"stem": r"^conv_stem|^bn_stem", "blocks": r"^layer(\d+)"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn_stem(self.conv_stem(x)))
        return self.layer2(self.layer1(x)).mean(dim=(2, 3))


def group_parameters(module: nn.Module, matcher: dict[str, str],
                     reverse: bool = False) -> dict[str, int]:
    """timm's contract for `reverse=True`: parameter name -> group index, stem first."""
    groups: dict[str, int] = {}
    for name, _ in module.named_parameters():
        if re.match(matcher["stem"], name):
            groups[name] = 0
        elif found := re.match(matcher["blocks"], name):
            groups[name] = int(found.group(1))
    return groups


def fake_timm() -> types.ModuleType:
    timm = types.ModuleType("timm")
    created: list[dict[str, Any]] = []

    def create_model(name: str, pretrained: bool = False, num_classes: int = 1000) -> nn.Module:
        created.append({"name": name, "pretrained": pretrained, "num_classes": num_classes})
        if name != "tinynet":
            raise RuntimeError(f"Unknown model ({name})")
        return TinyTimmNet()

    data = types.ModuleType("timm.data")
    data.resolve_model_data_config = lambda model: dict(model.pretrained_cfg)  # type: ignore
    models = types.ModuleType("timm.models")
    models.group_parameters = group_parameters  # type: ignore[attr-defined]
    timm.create_model = create_model  # type: ignore[attr-defined]
    timm.data, timm.models, timm.created = data, models, created  # type: ignore[attr-defined]
    return timm


@contextmanager
def standin_timm() -> Iterator[types.ModuleType]:
    """`timm` (and its submodules) replaced by the stand-in while the block runs."""
    module = fake_timm()
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "timm", module)
        patch.setitem(sys.modules, "timm.data", module.data)
        patch.setitem(sys.modules, "timm.models", module.models)
        yield module
