"""Image augmentation ops for the training stream, named in `config.data.augment`.

A spec is ops joined by "|", each a name with optional keyword arguments, as in big_vision's
preprocessing strings: "random_crop(pad=4)|flip_lr|random_erasing(p=0.5)". Ops work on a whole
uint8 batch [B, H, W, C] with numpy and draw from a generator seeded by (seed, batch number),
so a batch is augmented the same way whenever it is made, resumed runs included.

Written here rather than taken from a library: the libraries at hand apply ops per example in
Python (too slow to keep up with the train step) or in TensorFlow, which the training process
does not load.
"""

import ast
import inspect

import numpy as np

from research.errors import UserError


def random_crop(images: np.ndarray, rng: np.random.Generator, pad: int = 4) -> np.ndarray:
    """Zero-pads by `pad` on each side and crops back to the original size at a random offset."""
    B, H, W, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    top_B, left_B = rng.integers(0, 2 * pad + 1, size=(2, B))
    rows_BxH = top_B[:, None] + np.arange(H)
    cols_BxW = left_B[:, None] + np.arange(W)
    return padded[np.arange(B)[:, None, None], rows_BxH[:, :, None], cols_BxW[:, None, :]]


def flip_lr(images: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Mirrors each image left-right with probability `p`."""
    flip_B = rng.random(len(images)) < p
    return np.where(flip_B[:, None, None, None], images[:, :, ::-1], images)


def random_erasing(images: np.ndarray, rng: np.random.Generator, p: float = 0.5,
                   scale: tuple = (0.02, 0.33), ratio: tuple = (0.3, 3.3), value: int = 0) -> np.ndarray:
    """Random erasing (Zhong et al., 2017): with probability `p` a rectangle covering a
    fraction `scale` of the image, of aspect ratio `ratio` (sampled log-uniformly), is set
    to `value`. A rectangle larger than the image is clipped to it rather than redrawn."""
    B, H, W, _ = images.shape
    area_B = rng.uniform(*scale, size=B) * H * W
    aspect_B = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]), size=B))
    height_B = np.clip(np.rint(np.sqrt(area_B * aspect_B)), 1, H).astype(int)
    width_B = np.clip(np.rint(np.sqrt(area_B / aspect_B)), 1, W).astype(int)
    top_B = rng.integers(0, H - height_B + 1)
    left_B = rng.integers(0, W - width_B + 1)
    erase_B = rng.random(B) < p
    rows_BxH = np.arange(H) - top_B[:, None]
    cols_BxW = np.arange(W) - left_B[:, None]
    inside_BxHxW = (((rows_BxH >= 0) & (rows_BxH < height_B[:, None]))[:, :, None]
                    & ((cols_BxW >= 0) & (cols_BxW < width_B[:, None]))[:, None, :])
    erased_BxHxW = inside_BxHxW & erase_B[:, None, None]
    return np.where(erased_BxHxW[..., None], np.asarray(value, images.dtype), images)


OPS = {"random_crop": random_crop, "flip_lr": flip_lr, "random_erasing": random_erasing}


def _parse_op(text: str):
    try:
        node = ast.parse(text.strip(), mode="eval").body
        if isinstance(node, ast.Name):
            name, kwargs = node.id, {}
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.args:
            name, kwargs = node.func.id, {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        else:
            raise ValueError
    except (SyntaxError, ValueError) as e:
        raise UserError(f"data.augment: cannot read op {text!r}; write name or name(key=value, ...)") from e
    if name not in OPS:
        raise UserError(f"data.augment: unknown op {name!r}; choose from {sorted(OPS)}")
    accepted = list(inspect.signature(OPS[name]).parameters)[2:]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise UserError(f"data.augment: op {name!r} takes {accepted}, not {unknown}")
    return name, kwargs


def parse(spec: str):
    """The function `(batch, rng) -> batch` that applies the ops of `spec` to batch["image"],
    or None for an empty spec. Unknown ops and arguments are errors before training starts."""
    ops = [_parse_op(text) for text in spec.split("|") if text.strip()]
    if not ops:
        return None

    def augment(batch: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        images = batch["image"]
        for name, kwargs in ops:
            images = OPS[name](images, rng, **kwargs)
        return {**batch, "image": images}

    return augment
