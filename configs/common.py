"""Fields every experiment config has, with their defaults. Experiment files change values,
never add keys, so every config takes the same command-line overrides."""

import ml_collections

from research.config import parse_arg, product  # noqa: F401  (re-exported for config files)


def base_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.name = "fashion_mnist"
    config.data.source = "auto"  # auto: local files when present, else the TFDS catalog.
    config.data.idx_dir = ""  # Fashion-MNIST IDX files; "" is the Debian package's directory.
    config.data.tfds_dir = ""  # Where TFDS prepares datasets; "" is TFDS's default.
    config.data.batch_size = 128
    # Training-stream ops joined by "|", e.g. "random_crop(pad=4)|flip_lr|random_erasing(p=0.5)"
    # (research/data/augment.py).
    config.data.augment = ""
    # Class names to keep, relabelled 0, 1, ... in this order (e.g. two for a binary task);
    # empty: every class.
    config.data.classes = ()
    config.data.vocab_size = 8000  # Text: tokenizer vocabulary, trained on the train split.
    config.data.tokenizer = "bpe"  # Text: bpe (SentencePiece, vocab_size pieces) or char (one a character).
    config.data.max_len = 256  # Text: tokens an example (classifiers) or a window (language models).
    # data.name=text_folder, your own corpus: a directory, glob or comma-separated list of .txt
    # files (a document each) and .jsonl files (a document a line, in `text_field`).
    config.data.files = ""
    config.data.text_field = "text"
    config.data.test_fraction = 0.05  # Of the documents, held out as the test split.
    # auto | true | false: hold each split in memory, or stream it from its prepared files
    # (research/data/sources.py); auto holds splits of at most in_memory_max_gb on disk.
    # The batches, and so the results, are the same either way.
    config.data.in_memory = "auto"
    config.data.in_memory_max_gb = 4.0
    config.data.workers = 0  # Grain worker processes gathering training batches (0: a thread).

    config.model = mlp_model()
    # auto: what the model family learns (softmax classification, or language modelling);
    # binary: two classes as one sigmoid output and binary cross-entropy, with ROC AUC.
    config.task = "auto"

    config.opt = ml_collections.ConfigDict()
    config.opt.name = "adam"  # sgd | momentum | adam | adamw
    config.opt.lr = 1e-3
    config.opt.schedule = "constant"  # constant | cosine | linear, after a linear warmup.
    config.opt.warmup_steps = 0
    config.opt.end_lr_factor = 0.0  # Final lr of cosine/linear decay, as a fraction of lr.
    config.opt.weight_decay = 0.0
    config.opt.clip_norm = 0.0  # Global-norm clipping; 0 disables it.
    config.opt.momentum = 0.9
    config.opt.nesterov = False
    config.opt.b1 = 0.9
    config.opt.b2 = 0.999
    config.opt.eps = 1e-8

    config.train = ml_collections.ConfigDict()
    config.train.epochs = 10.0
    config.train.steps = 0  # When above 0, overrides epochs.
    config.train.log_every = 50
    # Train steps a jitted call runs (a scan over stacked batches): above 1 for models whose
    # step is shorter than a call's host cost (about 0.3 ms on CPU). Same results either way.
    config.train.steps_per_call = 1
    # Microbatches a step's gradient is summed over before its one update (a scan in the step):
    # the batch's update in a k-th of the activation memory.
    config.train.grad_accum_steps = 1
    config.train.eval_every = 0  # 0: once per epoch.
    config.train.checkpoint_every = 0  # 0: at every evaluation.
    config.train.keep = 3  # The latest checkpoints kept, besides the best one.
    config.train.best_metric = "eval/test/accuracy"
    config.train.best_mode = "max"
    # Above 0: stop once best_metric has not improved for this many evaluations (results.json
    # says when and why); the best checkpoint is kept as always.
    config.train.early_stop_patience = 0
    # "START:END": a jax.profiler trace of those steps in <workdir>/profile (Perfetto, or
    # TensorBoard's profile tab).
    config.train.profile_steps = ""

    config.eval = ml_collections.ConfigDict()
    config.eval.split = "test"
    config.eval.batch_size = 1000
    # At most this many batches of the split in every evaluation, the final one included (0: the
    # whole split): a smoke run of a large model need not evaluate all of it. results.json says so;
    # experiments.evaluate reads the whole split.
    config.eval.max_batches = 0
    # The same cap for the evaluations during training only (0: eval.max_batches), so frequent
    # evaluations estimate the metric from the split's first batches, as nanoGPT's `eval_iters`
    # does, and the last one (results.json) reads eval.max_batches.
    config.eval.periodic_max_batches = 0

    config.mesh = ml_collections.ConfigDict()
    config.mesh.num_devices = 0  # 0: every local device.
    # Axis sizes over those devices (research/parallel/sharding.py); -1 on one takes the rest.
    config.mesh.data = -1  # Batches split.
    config.mesh.fsdp = 1  # Batches, and each parameter and its optimizer moments, split.
    config.mesh.tensor = 1  # Attention heads and MLP units split (transformer, lm, vit).

    config.log = ml_collections.ConfigDict()
    # A Weights & Biases project: metrics, config, results and plots are mirrored to a W&B run
    # (research/train/wandb_log.py); a resumed run continues it. "" mirrors nothing.
    config.log.wandb_project = ""
    config.log.wandb_entity = ""  # "": the API key's default entity.
    # auto: online when W&B has an API key, else offline files in <workdir>/wandb (`wandb sync`).
    config.log.wandb_mode = "auto"

    config.init_from = ""  # A workdir whose latest params start this run.

    # Gradual magnitude pruning (research/compress/prune.py, Zhu & Gupta 2017): from start_step to
    # end_step (0: three quarters of training), every `every` steps, the smallest weights of the
    # parameters matching `params` are zeroed up to target_sparsity; 0 prunes nothing.
    config.prune = ml_collections.ConfigDict()
    config.prune.target_sparsity = 0.0
    config.prune.start_step = 0
    config.prune.end_step = 0
    config.prune.every = 100
    config.prune.scope = "layer"  # layer: each tensor to the target; global: ranked together.
    config.prune.params = "kernel$"  # A regex over parameter paths such as "block_0/mlp_in/kernel".

    # Quantization-aware training (research/compress/qat.py): "qat" trains through Qwix's int8
    # fake quantization of weights and activations; "" trains in float.
    config.quant = ml_collections.ConfigDict()
    config.quant.mode = ""
    config.quant.bits = 8

    # Knowledge distillation (research/compress/distill.py): a finished run of any family teaches
    # this one; loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * task loss.
    config.distill = ml_collections.ConfigDict()
    config.distill.teacher = ""  # The teacher's workdir; "" trains without one.
    config.distill.checkpoint = "best"  # The teacher's best, latest or a step.
    config.distill.temperature = 2.0
    config.distill.alpha = 0.5

    # Structured pruning (research/compress/shrink.py): this run's model is a narrower copy of
    # the `source` run's (the config's smaller widths) and starts from the weights of the
    # channels each layer keeps, those ranked highest by `criterion` (bn_scale, l1 or l2).
    config.shrink = ml_collections.ConfigDict()
    config.shrink.source = ""  # The wider run's workdir; "" starts from a random init.
    config.shrink.checkpoint = "best"  # The source's best, latest or a step.
    config.shrink.criterion = "bn_scale"
    return config


def fashion_mnist(model: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The Fashion-MNIST recipe shared by its configs: Adam 1e-3, 200 warmup steps, cosine
    decay over 10 epochs of batch 128."""
    config = base_config()
    config.data.name = "fashion_mnist"
    config.model = model
    config.opt.update(name="adam", lr=1e-3, schedule="cosine", warmup_steps=200)
    config.train.epochs = 10.0
    return config


def mnist_seed(model: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The recipe of the seed MNIST models (configs/mnist_cnn.py, mnist_mlp.py): Adam 1e-3,
    constant, 10 epochs of batch 64, MNIST from the TFDS catalog."""
    config = base_config()
    config.data.update(name="mnist", batch_size=64)
    config.model = model
    config.opt.update(name="adam", lr=1e-3, schedule="constant")
    config.train.update(epochs=10.0, log_every=200, keep=1)
    return config


def mnist_seed_sweep(name: str) -> list[dict]:
    if name == "lr":
        return lr_seed_sweep(lrs=(3e-4, 1e-3, 3e-3), seeds=range(3))
    raise ValueError(f"unknown sweep {name!r}; this config has: lr")


def shrink_for_smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A few steps with every cadence exercised: for checking that a config runs."""
    config.train.update(steps=20, log_every=5, eval_every=10)
    return config


def lr_seed_sweep(lrs, seeds) -> list[dict]:
    return product(**{"opt.lr": lrs, "seed": seeds})


# The model families each kind of input feeds (research/models).
FAMILIES = {"image": ("mlp", "cnn", "resnet", "vit"), "signal": ("mlp", "cnn1d", "gru"),
            "text": ("transformer", "lm")}


def model_config(name: str, variants: dict, inputs: str) -> ml_collections.ConfigDict:
    """The model of a config's `:model=NAME` argument: the config's own variant called NAME, or
    else family NAME with that family's defaults (`research.models.defaults`), for any family
    that takes the config's `inputs` ("image", "signal" or "text")."""
    from research import models

    if name in variants:
        return ml_collections.ConfigDict(variants[name])
    if name in FAMILIES[inputs]:
        return ml_collections.ConfigDict({"name": name, **models.defaults(name)})
    raise ValueError(f"unknown model {name!r}; this config takes {sorted({*variants, *FAMILIES[inputs]})}")


def mlp_model(hidden_sizes=(128, 64), residual=False) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({
        "name": "mlp", "hidden_sizes": hidden_sizes, "activation": "relu", "dropout": 0.0,
        "residual": residual})


def cnn_model(conv_features=(32, 64), dense_sizes=(128,), batch_norm=False) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({
        "name": "cnn", "conv_features": conv_features, "kernel_size": 3,
        "dense_sizes": dense_sizes, "activation": "relu", "dropout": 0.0, "batch_norm": batch_norm})
