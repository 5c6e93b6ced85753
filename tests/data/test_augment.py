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


def ramp_images(batch=3, size=8):
    """Distinct pixel values, so a moved pixel can be found."""
    values = np.arange(batch * size * size, dtype=np.int64).reshape(batch, size, size, 1)
    return (values % 251).astype(np.uint8)


def test_random_affine_with_nothing_drawn_is_the_identity():
    images = ramp_images()
    np.testing.assert_array_equal(augment.random_affine(images, np.random.default_rng(0)), images)


def test_random_affine_rotates_counter_clockwise_and_translates_by_whole_pixels():
    images = ramp_images()
    turned = augment.random_affine(images, np.random.default_rng(0), rotation=(90, 90))
    np.testing.assert_array_equal(turned, np.rot90(images, k=1, axes=(1, 2)))
    shifted = augment.random_affine(images, np.random.default_rng(0), translate=(0.25, 0.25),
                                    fill_mode="constant", fill=7)
    np.testing.assert_array_equal(shifted[:, 2:, 2:], images[:, :-2, :-2])  # Down and right by 2.
    assert (shifted[:, :2] == 7).all() and (shifted[:, :, :2] == 7).all()


def test_random_affine_zoom_and_shear_keep_the_centre_and_are_seeded():
    images = np.zeros((4, 9, 9, 1), np.uint8)
    images[:, 4, 4] = 200  # The centre pixel stays put under any zoom or shear about it.
    out = augment.random_affine(images, np.random.default_rng(1), zoom=0.3, shear=20)
    assert (out[:, 4, 4, 0] > 0).all()
    again = augment.random_affine(images, np.random.default_rng(1), zoom=0.3, shear=20)
    other = augment.random_affine(ramp_images(4, 9), np.random.default_rng(2), zoom=0.3, shear=20)
    np.testing.assert_array_equal(out, again)
    assert not np.array_equal(other, augment.random_affine(ramp_images(4, 9), np.random.default_rng(3),
                                                           zoom=0.3, shear=20))
    with pytest.raises(UserError, match="fill_mode='wrap'"):
        augment.random_affine(images, np.random.default_rng(0), fill_mode="wrap")


def test_brightness_and_contrast_are_clipped_seeded_and_identities_at_zero():
    images = ramp_images()
    rng = lambda: np.random.default_rng(5)  # noqa: E731
    np.testing.assert_array_equal(augment.random_brightness(images, rng(), delta=0.0), images)
    np.testing.assert_array_equal(augment.random_contrast(images, rng(), factor=0.0), images)
    brighter = augment.random_brightness(images, rng(), delta=(0.4, 0.4))  # + 102.
    np.testing.assert_array_equal(brighter, np.minimum(images.astype(int) + 102, 255))
    flat = augment.random_contrast(images, rng(), factor=(0.0, 0.0))
    assert (flat.std(axis=(1, 2)) < 1).all() and flat.dtype == np.uint8
    spec = augment.parse("random_affine(rotation=15, shear=10, zoom=0.1, translate=0.1)"
                         "|random_brightness(delta=0.2)|random_contrast(factor=0.2)")
    batch = {"image": images, "label": np.arange(3)}
    np.testing.assert_array_equal(spec(batch, rng())["image"], spec(batch, rng())["image"])
    assert spec(batch, rng())["image"].shape == images.shape


def constant_images(values, size=8):
    """Image i is the constant values[i], so a mixed pixel says which images it came from."""
    shape = (len(values), size, size, 1)
    return np.broadcast_to(np.asarray(values, np.uint8)[:, None, None, None], shape).copy()


def test_mixup_blends_each_image_with_its_partner_by_its_weight():
    values = np.array([0, 40, 80, 120, 160, 200, 240, 20])
    batch = {"image": constant_images(values), "label": np.arange(8, dtype=np.int32)}
    out = augment.mixup(batch, rng(3), alpha=1.0)
    weight, partner = out["mix_weight"], out["mix_label"]  # Labels are the indices here.
    assert out["image"].dtype == np.uint8 and weight.dtype == np.float32
    assert 0 < weight.min() and weight.max() < 1 and not (partner == np.arange(8)).all()
    np.testing.assert_allclose(out["image"][:, 0, 0, 0], weight * values + (1 - weight) * values[partner],
                               atol=0.5)
    np.testing.assert_array_equal(out["label"], batch["label"])
    kept = augment.mixup(batch, rng(3), p=0.0)
    np.testing.assert_array_equal(kept["image"], batch["image"])
    assert (kept["mix_weight"] == 1).all()


def test_cutmix_pastes_one_rectangle_of_the_partner_and_weighs_by_the_pixels_kept():
    values = np.array([10, 60, 110, 160, 210, 250])
    batch = {"image": constant_images(values, size=16), "label": np.arange(6, dtype=np.int32)}
    out = augment.cutmix(batch, rng(4), alpha=1.0)
    for image, own, partner, weight in zip(out["image"][..., 0], values, out["mix_label"], out["mix_weight"],
                                           strict=True):
        pasted = image != own
        assert set(np.unique(image)) <= {own, values[partner]}
        if pasted.any():
            rows, cols = np.nonzero(pasted)
            assert (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1) == len(rows), "one rectangle"
        if partner != np.flatnonzero(values == own)[0]:
            assert weight == pytest.approx(1 - pasted.mean())
    assert (out["mix_weight"] < 1).any()


def test_a_spec_mixes_once_and_mixed_labels_reach_the_loss():
    with pytest.raises(UserError, match="more than one"):
        augment.parse("mixup|cutmix")
    op = augment.parse("flip_lr|cutmix(alpha=0.5)")
    batch = {"image": images(), "label": np.arange(6, dtype=np.int32)}
    a, b = op(batch, rng(1)), op(batch, rng(1))
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["mix_weight"], b["mix_weight"])
    with pytest.raises(UserError, match="mix labels"):
        augment.mixup({"image": images()}, rng())


def test_the_classification_loss_of_a_mixed_batch_weighs_both_labels():
    import jax.numpy as jnp
    import optax

    from research import tasks
    logits = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32)
    label, other = jnp.array([0, 1, 2, 0]), jnp.array([1, 1, 0, 2])
    weight = jnp.array([1.0, 0.3, 0.5, 0.0], jnp.float32)
    task = tasks.Classification(3)
    loss, metrics = task.loss_and_metrics(logits, {"label": label, "mix_label": other, "mix_weight": weight})
    ce = optax.softmax_cross_entropy_with_integer_labels
    expected = (weight * ce(logits, label) + (1 - weight) * ce(logits, other)).mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    soft = optax.softmax_cross_entropy(logits, weight[:, None] * jnp.eye(3)[label]
                                       + (1 - weight[:, None]) * jnp.eye(3)[other]).mean()
    np.testing.assert_allclose(loss, soft, rtol=1e-6)  # The same as a soft label.
    right = logits.argmax(-1)
    expected_accuracy = (weight * (right == label) + (1 - weight) * (right == other)).mean()
    np.testing.assert_allclose(metrics["accuracy"], expected_accuracy, rtol=1e-6)
    binary = tasks.BinaryClassification()
    logit = logits[:, :1]
    own, mixed_in = jnp.array([0, 1, 1, 0]), jnp.array([1, 1, 0, 0])
    loss, _ = binary.loss_and_metrics(logit, {"label": own, "mix_label": mixed_in, "mix_weight": weight})
    target = weight * own + (1 - weight) * mixed_in
    expected = optax.sigmoid_binary_cross_entropy(logit[:, 0], target).mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
