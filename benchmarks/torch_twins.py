"""PyTorch twins of research's MLP, CNN, Transformer classifier and decoder-only language model,
the baseline `python -m benchmarks --torch` times beside ours.

Each twin has the layers, sizes, initial-scale conventions and optimizer of the config it
mirrors and trains on the same arrays; its train step does what ours does that costs
anything: uint8 images to float32 in [0, 1], forward, cross-entropy (for the language model
over next tokens, weighted by the padding mask), backward, optimizer update. CPU, eager by
default; `compile=True` wraps the model in `torch.compile` (the optimizer stays eager).
Needs the `bench` extra (`scripts/setup.sh --bench`).
"""

import functools
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# Flax's gelu is the tanh approximation.
ACTIVATIONS = {"relu": nn.ReLU, "gelu": functools.partial(nn.GELU, approximate="tanh"),
               "silu": nn.SiLU, "tanh": nn.Tanh, "elu": nn.ELU}


def use_all_cores() -> int:
    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    return threads


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"no PyTorch twin for activation {name!r}")
    return ACTIVATIONS[name]()


class MLP(nn.Module):
    def __init__(self, in_features: int, num_classes: int, hidden_sizes, activation: str = "relu",
                 dropout: float = 0.0, residual: bool = False):
        super().__init__()
        sizes = [in_features, *hidden_sizes]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.act, self.dropout, self.residual = _activation(activation), nn.Dropout(dropout), residual
        self.head = nn.Linear(sizes[-1], num_classes)

    def forward(self, x_BxCxHxW: torch.Tensor) -> torch.Tensor:
        x = x_BxCxHxW.flatten(1)
        for layer in self.hidden:
            y = self.dropout(self.act(layer(x)))
            x = x + y if self.residual and x.shape == y.shape else y
        return self.head(x)


class CNN(nn.Module):
    """[conv 'same' - (BatchNorm) - act - 2x2 max pool] per stage, then dense layers."""

    def __init__(self, image_shape_HxWxC, num_classes: int, conv_features, kernel_size: int = 3,
                 dense_sizes=(128,), activation: str = "relu", dropout: float = 0.0,
                 batch_norm: bool = False):
        super().__init__()
        height, width, channels = image_shape_HxWxC
        layers = []
        for features in conv_features:
            layers.append(nn.Conv2d(channels, features, kernel_size, padding="same", bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(features, eps=1e-5, momentum=0.1))
            layers += [_activation(activation), nn.MaxPool2d(2)]
            channels, height, width = features, height // 2, width // 2
        layers.append(nn.Flatten())
        sizes = [channels * height * width, *dense_sizes]
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), _activation(activation), nn.Dropout(dropout)]
        layers.append(nn.Linear(sizes[-1], num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x_BxCxHxW: torch.Tensor) -> torch.Tensor:
        return self.layers(x_BxCxHxW)


class Trunk(nn.Module):
    """research.models.transformer.Trunk: token + learned position embeddings (normal 0.02),
    pre-LayerNorm blocks (attention, tanh-GELU MLP, dropout where Flax has it, LayerNorm epsilon
    1e-6), final LayerNorm; padding masked as a key only."""

    def __init__(self, vocab_size: int, max_len: int, hidden: int, depth: int, heads: int,
                 mlp_dim: int, dropout: float, causal: bool):
        super().__init__()
        self.token_embed = nn.Embedding(vocab_size, hidden)
        self.position_embed = nn.Embedding(max_len, hidden)
        for embed in (self.token_embed, self.position_embed):
            nn.init.normal_(embed.weight, std=0.02)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                hidden, heads, mlp_dim, dropout, activation=functools.partial(F.gelu, approximate="tanh"),
                layer_norm_eps=1e-6, batch_first=True, norm_first=True)
            for _ in range(depth))
        self.final_norm = nn.LayerNorm(hidden, eps=1e-6)
        self.causal = causal

    def forward(self, tokens_BxL: torch.Tensor, mask_BxL: torch.Tensor) -> torch.Tensor:
        length = tokens_BxL.shape[1]
        x_BxLxD = self.dropout(self.token_embed(tokens_BxL)
                               + self.position_embed(torch.arange(length))[None])
        causal_LxL = (torch.ones(length, length, dtype=torch.bool).triu(1) if self.causal else None)
        for block in self.blocks:
            x_BxLxD = block(x_BxLxD, src_mask=causal_LxL, src_key_padding_mask=~mask_BxL,
                            is_causal=self.causal)
        return self.final_norm(x_BxLxD)


class TransformerClassifier(nn.Module):
    """research.models.transformer.TransformerClassifier: the trunk, mean or last-token pooling,
    a Dense head."""

    def __init__(self, num_classes: int, vocab_size: int, max_len: int, hidden: int, depth: int,
                 heads: int, mlp_dim: int, dropout: float, causal: bool = False, pool: str = "mean",
                 **precision):
        super().__init__()
        _float32_only(precision)
        self.trunk = Trunk(vocab_size, max_len, hidden, depth, heads, mlp_dim, dropout, causal)
        self.head = nn.Linear(hidden, num_classes)
        self.pool = pool

    def forward(self, tokens_BxL: torch.Tensor, mask_BxL: torch.Tensor) -> torch.Tensor:
        x_BxLxD = self.trunk(tokens_BxL, mask_BxL)
        if self.pool == "mean":
            weights_BxL = mask_BxL.to(x_BxLxD.dtype)
            count_Bx1 = weights_BxL.sum(1, keepdim=True).clamp(min=1)
            x_BxD = torch.einsum("bld,bl->bd", x_BxLxD, weights_BxL) / count_Bx1
        else:
            length = mask_BxL.shape[1]
            last_B = length - 1 - mask_BxL.flip(1).int().argmax(1)
            x_BxD = x_BxLxD[torch.arange(len(last_B)), last_B]
        return self.head(x_BxD)


class LanguageModel(nn.Module):
    """research.models.transformer.LanguageModel: the causal trunk and an untied Dense head over
    the vocabulary (next-token logits)."""

    def __init__(self, vocab_size: int, max_len: int, hidden: int, depth: int, heads: int,
                 mlp_dim: int, dropout: float, **precision):
        super().__init__()
        _float32_only(precision)
        self.trunk = Trunk(vocab_size, max_len, hidden, depth, heads, mlp_dim, dropout, causal=True)
        self.lm_head = nn.Linear(hidden, vocab_size)

    def forward(self, tokens_BxL: torch.Tensor, mask_BxL: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.trunk(tokens_BxL, mask_BxL))


def _float32_only(precision: dict) -> None:
    """The twins compute in float32 without rematerialisation: other settings have no twin.
    `scan` changes how XLA compiles the blocks, not what they compute; `head_dim` must be
    the default (hidden // heads), as torch's attention has it."""
    unknown = set(precision) - {"dtype", "param_dtype", "remat", "scan", "head_dim"}
    if precision.get("head_dim", 0):
        raise ValueError(f"no PyTorch twin for head_dim={precision['head_dim']} (0: hidden // heads)")
    if unknown:
        raise TypeError(f"unexpected model fields {sorted(unknown)}")
    if (precision.get("dtype", "float32"), precision.get("param_dtype", "float32"),
            precision.get("remat", "none")) != ("float32", "float32", "none"):
        raise ValueError(f"no PyTorch twin for {precision} (float32 and remat=none only)")


def build(model_config, arrays: dict[str, np.ndarray], num_classes: int,
          vocab_size: int | None = None) -> nn.Module:
    """The twin of `research.models.build(model_config, num_classes, vocab_size)`."""
    fields = {k: v for k, v in model_config.items() if k != "name"}
    name = model_config.name
    if name == "mlp":
        in_features = int(np.prod(next(a for k, a in arrays.items() if k in ("image", "signal")).shape[1:]))
        return MLP(in_features, num_classes, **fields)
    if name == "cnn" and "image" in arrays:
        return CNN(arrays["image"].shape[1:], num_classes, **fields)
    if name == "transformer":
        return TransformerClassifier(num_classes, vocab_size, **fields)
    if name == "lm":
        return LanguageModel(vocab_size, **fields)
    raise ValueError(f"no PyTorch twin for model {name!r} on {sorted(arrays)}")


def make_optimizer(opt_config, params) -> torch.optim.Optimizer:
    """Constant-lr twin of research.optim's optimizer (a schedule costs nothing per step)."""
    betas = (opt_config.b1, opt_config.b2)
    if opt_config.name == "adam":
        return torch.optim.Adam(params, lr=opt_config.lr, betas=betas, eps=opt_config.eps)
    if opt_config.name == "adamw":
        return torch.optim.AdamW(params, lr=opt_config.lr, betas=betas, eps=opt_config.eps,
                                 weight_decay=opt_config.weight_decay)
    if opt_config.name in ("sgd", "momentum"):
        momentum = opt_config.momentum if opt_config.name == "momentum" else 0.0
        return torch.optim.SGD(params, lr=opt_config.lr, momentum=momentum,
                               nesterov=opt_config.nesterov and momentum > 0)
    raise ValueError(f"no PyTorch twin for optimizer {opt_config.name!r}")


def as_tensors(batch: dict[str, np.ndarray]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """(model inputs, labels) in PyTorch's conventions: images NCHW (its native layout, converted
    once here rather than in every step), still uint8; labels int64, as cross_entropy wants."""
    labels = torch.from_numpy(batch["label"].astype(np.int64))
    if "image" in batch:
        return (torch.from_numpy(np.ascontiguousarray(batch["image"].transpose(0, 3, 1, 2))),), labels
    if "signal" in batch:
        return (torch.from_numpy(batch["signal"]),), labels
    return (torch.from_numpy(batch["tokens"]).long(), torch.from_numpy(batch["token_mask"])), labels


def next_token_loss(logits_BxLxV: torch.Tensor, tokens_BxL: torch.Tensor, mask_BxL: torch.Tensor):
    """Mean cross-entropy of each real token given those before it (research.tasks.LanguageModeling)."""
    losses_BxT = F.cross_entropy(logits_BxLxV[:, :-1].transpose(1, 2), tokens_BxL[:, 1:], reduction="none")
    weights_BxT = mask_BxL[:, 1:].to(losses_BxT.dtype)
    return (losses_BxT * weights_BxT).sum() / weights_BxT.sum().clamp(min=1)


class TrainSteps:
    """`steps(n)` runs n train steps on one resident batch (CPU ops are synchronous)."""

    def __init__(self, model: nn.Module, opt_config, batch: dict[str, np.ndarray], *, compile: bool = False):
        self.model = model.train()
        self.optimizer = make_optimizer(opt_config, model.parameters())
        self.forward = torch.compile(model) if compile else model
        self.clip_norm = opt_config.clip_norm
        self.inputs, self.labels = as_tensors(batch)
        self.next_tokens = isinstance(model, LanguageModel)  # Its targets are its own tokens.

    def step(self) -> torch.Tensor:
        x, *rest = self.inputs
        if x.dtype == torch.uint8:  # Images go over as uint8, as ours do.
            x = x.float() / 255.0
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.forward(x, *rest)
        if self.next_tokens:
            loss = next_token_loss(logits, *self.inputs)
        else:
            loss = F.cross_entropy(logits, self.labels)
        loss.backward()
        if self.clip_norm:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_norm)
        self.optimizer.step()
        return loss

    def __call__(self, n: int) -> None:
        for _ in range(n):
            self.step()


def matmul_gflops(size: int, repeats: int) -> list[float]:
    """GFLOP/s of float32 [size, size] @ [size, size], one value per repeat."""
    import time

    a, b = torch.rand(size, size), torch.rand(size, size)
    a @ b
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        rates.append(2 * size**3 / (time.perf_counter() - start) / 1e9)
    return rates
