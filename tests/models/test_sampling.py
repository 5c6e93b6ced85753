import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from research import models
from research.models.sampling import sample, sample_batch
from tests.conftest import jit_init

VOCAB = 10


def tiny_lm(dropout=0.0):
    config = ml_collections.ConfigDict(
        {"name": "lm", "max_len": 24, "hidden": 32, "depth": 1, "heads": 2, "mlp_dim": 64,
         "dropout": dropout})
    return models.build(config, num_classes=0, vocab_size=VOCAB)


@pytest.fixture(scope="module")
def untrained():
    model = tiny_lm()
    return model, jit_init(model, jax.random.key(0), jnp.zeros((1, 24), jnp.int32), train=False)["params"]


def test_greedy_is_deterministic_and_keeps_the_prompt(untrained):
    model, params = untrained
    prompt = jnp.array([1, 2, 3])
    first = sample(model, params, prompt, max_new_tokens=5, temperature=0.0, key=jax.random.key(0))
    second = sample(model, params, prompt, max_new_tokens=5, temperature=0.0, key=jax.random.key(1))
    assert first.shape == (8,) and first.dtype == jnp.int32
    np.testing.assert_array_equal(first[:3], prompt)
    np.testing.assert_array_equal(first, second)
    # top_k 1 is greedy at any temperature.
    np.testing.assert_array_equal(first, sample(model, params, prompt, max_new_tokens=5, temperature=1.0,
                                                top_k=1, key=jax.random.key(2)))


def test_sampling_depends_only_on_the_key(untrained):
    model, params = untrained
    prompt = jnp.array([1, 2, 3])

    def draw(seed):
        return sample(model, params, prompt, max_new_tokens=12, temperature=2.0, key=jax.random.key(seed))

    np.testing.assert_array_equal(draw(0), draw(0))
    assert not np.array_equal(draw(0), draw(1))


def test_stops_at_eos_and_pads_after(untrained):
    model, params = untrained
    prompt = jnp.array([1, 2, 3])
    greedy = sample(model, params, prompt, max_new_tokens=5, temperature=0.0, key=jax.random.key(0))
    eos = int(greedy[3])
    stopped = sample(model, params, prompt, max_new_tokens=5, temperature=0.0, key=jax.random.key(0),
                     eos_id=eos, pad_id=-1)
    np.testing.assert_array_equal(stopped, [1, 2, 3, eos, -1, -1, -1, -1])


def test_batch_rows_with_shorter_prompts_match_single_prompts(untrained):
    model, params = untrained
    prompts = jnp.array([[1, 2, 3], [4, 5, 0]])
    batch = sample_batch(model, params, prompts, prompt_lengths_B=[3, 2], max_new_tokens=4,
                         temperature=0.0, key=jax.random.key(0))
    assert batch.shape == (2, 7)
    single = sample(model, params, jnp.array([4, 5]), max_new_tokens=4, temperature=0.0,
                    key=jax.random.key(0))
    np.testing.assert_array_equal(batch[1, :6], single)
    assert batch[1, 6] == 0  # Past its max_new_tokens: padding.


def test_past_max_len_the_model_reads_the_last_tokens_it_was_trained_to_read(untrained):
    model, params = untrained  # max_len 24.
    long = sample(model, params, jnp.array([1, 2]), max_new_tokens=38, temperature=0.0, key=jax.random.key(0))
    assert long.shape == (40,)
    for position in (23, 31, 39):  # Each token is what the 23 before it, alone, make next.
        window = long[position - 23:position]
        alone = sample(model, params, window, max_new_tokens=1, temperature=0.0, key=jax.random.key(0))
        assert alone[-1] == long[position]
    shorter = sample(model, params, jnp.array([1, 2]), max_new_tokens=20, temperature=0.0,
                     key=jax.random.key(0))
    np.testing.assert_array_equal(long[:22], shorter)  # Within max_len, as before.


def test_trained_lm_continues_a_repeated_sequence():
    model = tiny_lm()
    offsets = np.arange(VOCAB)
    tokens = jnp.asarray((offsets[:, None] + np.arange(24)[None]) % VOCAB, jnp.int32)  # Every phase of 0..9.
    params = jit_init(model, jax.random.key(0), tokens, train=False)["params"]
    tx = optax.adam(1e-2)

    def loss_fn(params):
        logits = model.apply({"params": params}, tokens, train=False)
        return optax.softmax_cross_entropy_with_integer_labels(logits[:, :-1], tokens[:, 1:]).mean()

    @jax.jit
    def step(params, opt_state):
        grads = jax.grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    opt_state = tx.init(params)
    for _ in range(50):
        params, opt_state = step(params, opt_state)
    continued = sample(model, params, jnp.array([7, 8, 9]), max_new_tokens=12, temperature=0.0,
                       key=jax.random.key(0))
    np.testing.assert_array_equal(continued, [7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1])
    pages = sample(model, params, jnp.array([7, 8, 9]), max_new_tokens=57, temperature=0.0,
                   key=jax.random.key(0))  # 60 tokens from a model of 24.
    np.testing.assert_array_equal(pages, (7 + np.arange(60)) % VOCAB)
