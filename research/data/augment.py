"""Image augmentation ops for the training stream, named in `config.data.augment`.

A spec is ops joined by "|", each a name with optional keyword arguments, as in big_vision's
preprocessing strings: "random_crop(pad=4)|flip_lr|random_erasing(p=0.5)", or Keras-style
"random_affine(rotation=15, shear=10, zoom=0.1, translate=0.1)|random_brightness(delta=0.2)|
random_contrast(factor=0.2)". Ops work on a whole
uint8 batch [B, H, W, C] with numpy and draw from a generator seeded by (seed, batch number),
so a batch is augmented the same way whenever it is made, resumed runs included.

Two ops mix pairs of examples, "mixup(alpha=1.0)" and "cutmix(alpha=1.0)" (at most one a spec):
they blend each image with another of the batch and add `mix_label` (the other's label) and
`mix_weight` (the share of the image's own label) to the batch; the classification losses
read them as soft labels, and a distilled student matches its teacher on the mixed images.

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


def _draw(rng: np.random.Generator, spread, size: int, center: float = 0.0) -> np.ndarray:
    """`size` draws from U(center - spread, center + spread), or from U(lo, hi) when `spread`
    is a pair (lo, hi)."""
    lo, hi = spread if isinstance(spread, (tuple, list)) else (center - spread, center + spread)
    return rng.uniform(lo, hi, size=size)


def random_affine(images: np.ndarray, rng: np.random.Generator, rotation=0.0, shear=0.0, zoom=0.0,
                  translate=0.0, fill_mode: str = "nearest", fill: int = 0) -> np.ndarray:
    """A random affine transform of each image about its centre, as Keras' ImageDataGenerator
    draws them: a rotation of U(-rotation, rotation) degrees (counter-clockwise positive), a
    shear of U(-shear, shear) degrees, a zoom of U(1 - zoom, 1 + zoom) (above 1 enlarges) and a
    translation of U(-translate, translate) of the height and width; each may instead be a
    pair (lo, hi) (for zoom, of the factor itself). Bilinear resampling in one pass; points
    from outside the image take the nearest edge pixel (`fill_mode="nearest"`) or `fill`
    (`"constant"`)."""
    if fill_mode not in ("nearest", "constant"):
        raise UserError(f"data.augment: random_affine fill_mode={fill_mode!r}; use nearest or constant")
    B, H, W, _ = images.shape
    angle_B = np.deg2rad(_draw(rng, rotation, B))
    shear_B = np.deg2rad(_draw(rng, shear, B))
    zoom_B = _draw(rng, zoom, B, center=1.0)
    shift_Bx2 = np.stack([_draw(rng, translate, B) * H, _draw(rng, translate, B) * W], axis=1)
    # The output pixel (y, x) reads the source at M^-1 ((y, x) - centre - shift) + centre, with
    # M = rotation @ shear @ zoom in (row, column) coordinates, where this matrix turns the
    # image counter-clockwise on screen for a positive angle (tests check it against rot90).
    cos, sin = np.cos(angle_B), np.sin(angle_B)
    rotate_Bx2x2 = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    shear_Bx2x2 = np.zeros((B, 2, 2))
    shear_Bx2x2[:, 0, 0], shear_Bx2x2[:, 1, 1], shear_Bx2x2[:, 1, 0] = 1.0, 1.0, np.tan(shear_B)
    matrix_Bx2x2 = rotate_Bx2x2 @ shear_Bx2x2 * zoom_B[:, None, None]
    inverse_Bx2x2 = np.linalg.inv(matrix_Bx2x2).astype(np.float32)
    centre = np.array([(H - 1) / 2, (W - 1) / 2], np.float32)
    grid_HxWx2 = np.stack(np.meshgrid(np.arange(H), np.arange(W), indexing="ij"), -1) - centre
    offsets_BxHxWx2 = grid_HxWx2[None] - shift_Bx2[:, None, None].astype(np.float32)
    source_BxHxWx2 = np.einsum("bij,bhwj->bhwi", inverse_Bx2x2, offsets_BxHxWx2) + centre
    rows, cols = source_BxHxWx2[..., 0], source_BxHxWx2[..., 1]
    outside_BxHxW = (rows < 0) | (rows > H - 1) | (cols < 0) | (cols > W - 1)
    rows, cols = np.clip(rows, 0, H - 1), np.clip(cols, 0, W - 1)
    top, left = rows.astype(np.int64), cols.astype(np.int64)  # Floor: both are 0 or more.
    down, right = (rows - top)[..., None], (cols - left)[..., None]
    # Bilinear: the four neighbours, gathered from the flattened batch by one index each.
    flat = images.reshape(B * H * W, -1).astype(np.float32)
    base = np.arange(B)[:, None, None] * (H * W)
    below, beside = np.minimum(top + 1, H - 1), np.minimum(left + 1, W - 1)
    value = ((flat[base + top * W + left] * (1 - right) + flat[base + top * W + beside] * right) * (1 - down)
             + (flat[base + below * W + left] * (1 - right) + flat[base + below * W + beside] * right) * down)
    if fill_mode == "constant":
        value = np.where(outside_BxHxW[..., None], np.float32(fill), value)
    return np.clip(np.rint(value), 0, 255).astype(images.dtype)


def random_brightness(images: np.ndarray, rng: np.random.Generator, delta=0.2) -> np.ndarray:
    """Adds U(-delta, delta) x 255 to every pixel of each image (or U(lo, hi) x 255 for a pair),
    clipped to [0, 255]."""
    shift_B = _draw(rng, delta, len(images)) * 255
    return np.clip(np.rint(images + shift_B[:, None, None, None]), 0, 255).astype(images.dtype)


def random_contrast(images: np.ndarray, rng: np.random.Generator, factor=0.2) -> np.ndarray:
    """Scales each image's distance from its mean (per channel) by U(1 - factor, 1 + factor)
    (or U(lo, hi) for a pair), clipped to [0, 255]."""
    scale_B = _draw(rng, factor, len(images), center=1.0)
    mean_Bx1x1xC = images.mean(axis=(1, 2), keepdims=True)
    scaled = (images - mean_Bx1x1xC) * scale_B[:, None, None, None] + mean_Bx1x1xC
    return np.clip(np.rint(scaled), 0, 255).astype(images.dtype)


def _partners(rng: np.random.Generator, batch: dict, p: float) -> tuple[np.ndarray, np.ndarray]:
    """Each example's partner (a random pairing of the batch) and whether it is mixed (with
    probability `p`)."""
    if "label" not in batch:
        raise UserError("data.augment: mixup and cutmix mix labels; this dataset has none")
    n = len(batch["label"])
    return rng.permutation(n), rng.random(n) < p


def _mixed(batch: dict, images: np.ndarray, partner_B: np.ndarray, weight_B: np.ndarray) -> dict:
    return {**batch, "image": images, "mix_label": batch["label"][partner_B],
            "mix_weight": weight_B.astype(np.float32)}


def mixup(batch: dict, rng: np.random.Generator, alpha: float = 1.0, p: float = 1.0) -> dict:
    """Mixup (Zhang et al., 2018): with probability `p` an example's image becomes
    `w * image + (1 - w) * partner's image`, w ~ Beta(alpha, alpha) drawn per example."""
    partner_B, mixed_B = _partners(rng, batch, p)
    images = batch["image"]
    weight_B = np.where(mixed_B, rng.beta(alpha, alpha, size=len(images)), 1.0)
    w = weight_B[:, None, None, None]
    blended = np.rint(w * images + (1 - w) * images[partner_B])
    return _mixed(batch, blended.astype(images.dtype), partner_B, weight_B)


def cutmix(batch: dict, rng: np.random.Generator, alpha: float = 1.0, p: float = 1.0) -> dict:
    """CutMix (Yun et al., 2019): with probability `p` a rectangle of the partner's image is
    pasted into an example's: its sides sqrt(1 - w) of the image's, w ~ Beta(alpha, alpha), at a
    uniformly drawn centre, clipped to the image. `mix_weight` is the share of pixels the
    image keeps after clipping."""
    partner_B, mixed_B = _partners(rng, batch, p)
    images = batch["image"]
    B, H, W, _ = images.shape
    side_B = np.sqrt(1.0 - rng.beta(alpha, alpha, size=B))
    centre_Bx2 = rng.uniform(0, 1, size=(B, 2)) * [H, W]
    half_Bx2 = side_B[:, None] * [H, W] / 2
    top_B, left_B = np.clip(np.rint(centre_Bx2 - half_Bx2), 0, [H, W]).astype(int).T
    bottom_B, right_B = np.clip(np.rint(centre_Bx2 + half_Bx2), 0, [H, W]).astype(int).T
    rows_BxH, cols_BxW = np.arange(H)[None], np.arange(W)[None]
    inside_BxHxW = (((rows_BxH >= top_B[:, None]) & (rows_BxH < bottom_B[:, None]))[:, :, None]
                    & ((cols_BxW >= left_B[:, None]) & (cols_BxW < right_B[:, None]))[:, None, :])
    inside_BxHxW &= mixed_B[:, None, None]
    pasted = np.where(inside_BxHxW[..., None], images[partner_B], images)
    return _mixed(batch, pasted, partner_B, 1.0 - inside_BxHxW.mean(axis=(1, 2)))


OPS = {"random_crop": random_crop, "flip_lr": flip_lr, "random_erasing": random_erasing,
       "random_affine": random_affine, "random_brightness": random_brightness,
       "random_contrast": random_contrast}
MIXES = {"mixup": mixup, "cutmix": cutmix}  # Ops of the whole batch: (batch, rng) -> batch.


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
    if name not in OPS and name not in MIXES:
        raise UserError(f"data.augment: unknown op {name!r}; choose from {sorted(OPS) + sorted(MIXES)}")
    accepted = list(inspect.signature(OPS.get(name) or MIXES[name]).parameters)[2:]
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
    if sum(name in MIXES for name, _ in ops) > 1:
        raise UserError(f"data.augment: {spec!r} has more than one of {sorted(MIXES)}; keep one")

    def augment(batch: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        for name, kwargs in ops:
            if name in MIXES:
                batch = MIXES[name](batch, rng, **kwargs)
            else:
                batch = {**batch, "image": OPS[name](batch["image"], rng, **kwargs)}
        return batch

    return augment
