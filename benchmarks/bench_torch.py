"""PyTorch peer (CPU, eager): the same VGG13 and light model, Adam + softmax cross-entropy.

Not included, unlike ferjax's step: the center loss and its center update (a 128- or
1024-wide feature distance and an 8-row update: negligible next to the convolutions).
Memory format: "contiguous" (NCHW) or "channels_last"; run.py keeps the faster.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402  (ImportError here is how run.py learns the peer is missing)
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from benchmarks.common import (LIGHT_PARAMS_1CH, VGG13_PARAMS_1CH, random_batch, rate,  # noqa: E402
                               time_steps)
from ferjax.config import LIGHT_LAYERS, ModelConfig  # noqa: E402
from ferjax.features import num_channels  # noqa: E402

THREADS = 2


def vgg13(channels: int, image_size: int = 64, num_classes: int = 8) -> nn.Sequential:
    layers, c = [], channels
    for widths in ((64, 64), (128, 128), (256, 256, 256), (256, 256, 256)):
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(inplace=True)]
            c = w
        layers += [nn.MaxPool2d(2), nn.Dropout(0.25)]
    side = image_size // 16
    layers += [nn.Flatten(), nn.Linear(c * side * side, 1024), nn.ReLU(inplace=True), nn.Dropout(0.5),
               nn.Linear(1024, 1024), nn.ReLU(inplace=True), nn.Dropout(0.5),
               nn.Linear(1024, num_classes)]
    return nn.Sequential(*layers)


class SpaceToDepth2(nn.Module):
    def forward(self, x):
        return F.pixel_unshuffle(x, 2)


def light(channels: int, image_size: int = 64, num_classes: int = 8) -> nn.Sequential:
    """ferjax's light model of the default layer table (ferjax.config.LIGHT_LAYERS)."""
    table = LIGHT_LAYERS[ModelConfig.light_layers]
    layers, c = [SpaceToDepth2()], 4 * channels
    for i, w in enumerate(table.widths):
        layers += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w, momentum=0.1, eps=1e-5),
                   nn.ReLU(inplace=True)]
        layers += [nn.MaxPool2d(2)] if i + 1 in table.pool_after else []
        c = w
    side = image_size // 16
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()] if table.pooled else [nn.Flatten()]
    flat = c if table.pooled else c * side * side
    layers += [nn.Dropout(0.25), nn.Linear(flat, table.fc), nn.ReLU(inplace=True), nn.Dropout(0.5),
               nn.Linear(table.fc, num_classes)]
    return nn.Sequential(*layers)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build(model: str, channels: int, image_size: int = 64) -> nn.Module:
    net = {"vgg13": vgg13, "light": light}[model](channels, image_size)
    if image_size == 64:   # the study's architecture, checked by its parameter count
        expected = {"vgg13": VGG13_PARAMS_1CH + 576 * (channels - 1),
                    "light": LIGHT_PARAMS_1CH + 864 * (channels - 1)}[model]
        assert count_params(net) == expected, (model, count_params(net), expected)
    return net


def _setup(model, batch, features, image_size, memory_format, seed=0):
    torch.set_num_threads(THREADS)
    torch.manual_seed(seed)
    fmt = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}[memory_format]
    net = build(model, num_channels(features), image_size).to(memory_format=fmt)
    data = random_batch(batch, num_channels(features), image_size)
    x = torch.from_numpy(data["image"]).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
    y = torch.from_numpy(data["label"]).long()
    return net, x, y


def train(model: str = "light", batch: int = 64, features: str = "O",
          memory_format: str = "contiguous", warmup: int = 3, steps: int = 10,
          image_size: int = 64) -> dict:
    net, x, y = _setup(model, batch, features, image_size, memory_format)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=3e-4)
    last = {}

    def one():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        last["loss"] = float(loss.detach())

    timing = time_steps(one, warmup, steps)
    return {"images_per_s": rate(timing, batch), "params": count_params(net),
            "memory_format": memory_format, "threads": torch.get_num_threads(),
            "loss_finite": bool(torch.isfinite(torch.tensor(last["loss"]))), **timing}


def infer(model: str = "light", batch: int = 256, features: str = "O",
          memory_format: str = "contiguous", warmup: int = 3, steps: int = 10,
          image_size: int = 64) -> dict:
    net, x, _ = _setup(model, batch, features, image_size, memory_format)
    net.eval()

    def one():
        with torch.inference_mode():
            net(x)

    timing = time_steps(one, warmup, steps)
    return {"images_per_s": rate(timing, batch), "params": count_params(net),
            "memory_format": memory_format, "threads": torch.get_num_threads(), **timing}


def ceiling(n: int = 2048, warmup: int = 2, steps: int = 5) -> dict:
    torch.set_num_threads(THREADS)
    a, b = torch.randn(n, n), torch.randn(n, n)
    timing = time_steps(lambda: torch.mm(a, b), warmup, steps)
    return {"n": n, "gflops": 2.0 * n ** 3 / timing["median_step_s"] / 1e9, **timing}


def probe() -> dict:
    return {"torch": torch.__version__, "threads": THREADS,
            "mkldnn": bool(torch.backends.mkldnn.is_available())}


FUNCTIONS = {"train": train, "infer": infer, "ceiling": ceiling, "probe": probe}
