"""Small Vision Transformer (Dosovitskiy et al. 2021): non-overlapping patches embedded by a
conv with stride = patch size, learned position embeddings, pre-LayerNorm blocks (the text
Transformer's `Block`), a final LayerNorm, and a [CLS] token or the mean over patches.

Its sizes and precision are a `TransformerConfig` (the field `config`, which the registry builds
from `config.model` by field name) beside `patch_size` and `pool`. The defaults (4x4 patches,
hidden 64, 4 blocks of 4 heads, MLP 128, no dropout) suit 28x28 or 32x32 images: 49 or 64
patches, about 0.14M parameters.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from research.errors import UserError
from research.models.transformer import EMBED_INIT, TransformerConfig, check_precision, run_blocks

POOLS = ("cls", "mean")


class ViT(nn.Module):
    num_classes: int
    patch_size: int = 4
    config: TransformerConfig = TransformerConfig(hidden=64, depth=4, heads=4, mlp_dim=128, dropout=0.0)
    pool: str = "cls"  # "cls": a learned [CLS] token's output; "mean": the mean over patches.

    @nn.compact
    def __call__(self, x_BxHxWxC: jax.Array, *, train: bool) -> jax.Array:
        if self.pool not in POOLS:
            raise UserError(f"unknown pool {self.pool!r}; choose one of {list(POOLS)} "
                            "with --config.model.pool")
        config = self.config
        check_precision(config)
        types = config.types
        patch = (self.patch_size, self.patch_size)
        x = nn.Conv(config.hidden, patch, strides=patch, padding="VALID", name="patch_embed",
                    **types)(x_BxHxWxC)
        batch, rows, cols, hidden = x.shape
        x_BxNxD = x.reshape(batch, rows * cols, hidden)
        if self.pool == "cls":
            cls_1x1xD = self.param("cls_token", nn.initializers.zeros, (1, 1, hidden))
            x_BxNxD = jnp.concatenate([jnp.broadcast_to(cls_1x1xD, (batch, 1, hidden)), x_BxNxD], axis=1)
        x_BxNxD += self.param("position_embed", EMBED_INIT, x_BxNxD.shape[1:])[None]
        x_BxNxD = nn.Dropout(config.dropout, deterministic=not train)(x_BxNxD)
        x_BxNxD = run_blocks(config, x_BxNxD, None, train)
        x_BxNxD = nn.LayerNorm(name="final_norm", **types)(x_BxNxD)
        x_BxD = x_BxNxD[:, 0] if self.pool == "cls" else x_BxNxD.mean(axis=1)
        logits_BxK = nn.Dense(self.num_classes, name="classifier_head", **types)(x_BxD)
        return logits_BxK.astype(jnp.float32)
