import numpy as np
import pytest

from research.data import augment, pipeline
from research.errors import UserError


def images(n=6, size=8, channels=3):
    rng = np.random.default_rng(0)
    return rng.integers(1, 256, size=(n, size, size, channels), dtype=np.uint8)


def rng(seed=0):
    return np.random.default_rng(seed)


def test_random_crop_is_a_window_of_the_padded_image():
    x = images()
    out = augment.random_crop(x, rng(), pad=2)
    assert out.shape == x.shape and out.dtype == np.uint8
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    for i in range(len(x)):
        windows = [(t, c) for t in range(5) for c in range(5)
                   if np.array_equal(padded[i, t:t + 8, c:c + 8], out[i])]
        assert windows, f"example {i} is not a crop of its padded image"
    np.testing.assert_array_equal(augment.random_crop(x, rng(), pad=0), x)


def test_flip_lr_mirrors_chosen_images_only():
    x = images()
    np.testing.assert_array_equal(augment.flip_lr(x, rng(), p=1.0), x[:, :, ::-1])
    np.testing.assert_array_equal(augment.flip_lr(x, rng(), p=0.0), x)
    out = augment.flip_lr(x, rng(), p=0.5)
    flipped = [np.array_equal(o, f) for o, f in zip(out, x[:, :, ::-1], strict=True)]
    kept = [np.array_equal(o, i) for o, i in zip(out, x, strict=True)]
    assert all(a or b for a, b in zip(flipped, kept, strict=True))


def test_random_erasing_blanks_one_rectangle():
    x = images(n=20, size=16)  # No pixel is 0 before erasing.
    out = augment.random_erasing(x, rng(), p=1.0, value=0)
    for o in out:
        rows, cols = np.nonzero((o == 0).all(axis=-1))
        assert len(rows) > 0
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert box == len(rows), "erased pixels form a filled rectangle"
        assert len(rows) <= 0.4 * 16 * 16
    np.testing.assert_array_equal(augment.random_erasing(x, rng(), p=0.0), x)


def test_spec_is_deterministic_given_the_generator():
    op = augment.parse("random_crop(pad=4)|flip_lr|random_erasing(p=0.5, value=128)")
    batch = {"image": images(size=32), "label": np.arange(6)}
    a, b, c = op(batch, rng(1)), op(batch, rng(1)), op(batch, rng(2))
    np.testing.assert_array_equal(a["image"], b["image"])
    assert not np.array_equal(a["image"], c["image"])
    np.testing.assert_array_equal(a["label"], batch["label"])
    assert augment.parse("") is None and augment.parse(" | ") is None


@pytest.mark.parametrize("spec, message", [
    ("rotate(deg=3)", "unknown op 'rotate'"),
    ("random_crop(size=3)", "takes \\['pad'\\]"),
    ("random_crop(4)", "cannot read op"),
    ("flip_lr(p=", "cannot read op"),
])
def test_bad_specs_are_user_errors(spec, message):
    with pytest.raises(UserError, match=message):
        augment.parse(spec)


def test_augmented_stream_resumes_with_the_same_batches():
    arrays = {"image": images(n=10, size=8), "label": np.arange(10, dtype=np.int32)}
    op = augment.parse("random_crop(pad=2)|flip_lr")
    plain = pipeline.train_batches(arrays, batch_size=4, seed=0)
    first = pipeline.train_batches(arrays, batch_size=4, seed=0, augment=op)
    batches = [next(first) for _ in range(3)]
    assert not np.array_equal(batches[0]["image"], next(plain)["image"])
    resumed = pipeline.train_batches(arrays, batch_size=4, seed=0, augment=op)
    next(resumed)
    state = resumed.get_state()
    again = pipeline.train_batches(arrays, batch_size=4, seed=0, augment=op)
    again.set_state(state)
    np.testing.assert_array_equal(next(again)["image"], batches[1]["image"])
