"""Fashion-MNIST compression: a BN CNN teacher, a small CNN student trained from scratch, with
distillation from the teacher or with int8 quantization-aware training, and the teacher
magnitude-pruned. The rows of `scripts/reproduce_tables.py --table=compression`
(docs/tables/compression.md), which also quantizes the teachers after training (int8 PTQ).

  python -m experiments.train --config=configs/compression.py:row=teacher --workdir=runs/teacher
  python -m experiments.train --config=configs/compression.py:row=distilled --workdir=runs/distilled \\
      --config.distill.teacher=runs/teacher
  python -m experiments.train --config=configs/compression.py:row=pruned,sparsity=0.9 \\
      --workdir=runs/pruned90 --config.init_from=runs/teacher
  python -m experiments.train --config=configs/compression.py:row=shrunk,keep=0.5 \\
      --workdir=runs/shrunk50 --config.shrink.source=runs/teacher

Rows:
  teacher    conv32-pool-conv64-pool-dense128 with BatchNorm (421,738 parameters), 5 epochs
  student    conv8-pool-conv16-pool-dense32 (26,698 parameters, 16x fewer), 10 epochs
  distilled  the student, its loss 0.9 * T^2 * KL(teacher_T || student_T) + 0.1 * cross-entropy,
             T=4 (`distill.teacher` is the teacher's workdir); `:row=distilled,temperature=2,alpha=0.5`
             weighs the soft targets less
  pruned     the teacher fine-tuned 2 epochs (Adam 3e-4) from its checkpoint (`init_from`)
             while its kernels are pruned to `sparsity` (Zhu & Gupta's schedule over the first
             600 steps, every 50)
  qat        the student trained through int8 fake quantization (Qwix), 10 epochs
  shrunk     the teacher structurally pruned (`shrink.source` is the teacher's workdir): each
             layer keeps round(`keep` x its width) channels, those with the largest BatchNorm
             scale (dense layers: the largest L1 norm), then fine-tuned `epochs` epochs (default
             5; Adam at `lr`, default 1e-3, a 50-step warmup, cosine decay); without
             `shrink.source` the same model and schedule from scratch
`fm=mixup` (or `fm=cutmix`) trains a student or distilled row by function matching (Beyer et
al., 2022): every training image is cropped (pad 2), flipped and mixed with another of the batch
(`fm=crop`: not mixed),
Adam's rate follows a cosine over `epochs` (default 10) after a 100-step warmup, and a distilled
student learns from the teacher's outputs on those same mixed images alone (alpha=1, T=1); a
student row with the same `fm` is its scratch baseline, the same views and schedule with the
two labels weighed by the mix. On a shrunk row, `fm` fine-tunes on those views, and with
`--config.distill.teacher` set (the compression recipe), from the teacher's outputs on them.
`wide=True` makes the student conv16-pool-conv32-pool-dense64 (105,866 parameters, 4x fewer
than the teacher's), which fits its training set more closely than the small one; `mlp=True`
makes it an MLP 784-256-128-10 (235,146 parameters), a student of another family that
overfits its training set given a long schedule (`--config.train.epochs=30`).
`scope=global` prunes every kernel against one threshold instead of each to `sparsity`.
"""

from configs import common

ROWS = ("teacher", "student", "distilled", "pruned", "qat", "shrunk")
TEACHER = {"conv_features": (32, 64), "dense_sizes": (128,)}


def get_config(arg=None):
    args = common.parse_arg(arg, row="teacher", sparsity=0.5, temperature=4.0, alpha=0.9, wide=False,
                            mlp=False, scope="layer", keep=0.5, epochs=None, lr=1e-3, fm="", smoke=False)
    if args.row in ("teacher", "pruned", "shrunk"):
        widths = dict(TEACHER)
        if args.row == "shrunk":
            widths = {name: tuple(max(1, round(float(args.keep) * w)) for w in sizes)
                      for name, sizes in TEACHER.items()}
        config = common.fashion_mnist(common.cnn_model(**widths, batch_norm=True))
        config.train.epochs = 5.0
    elif args.row in ("student", "distilled", "qat"):
        if args.mlp:
            config = common.fashion_mnist(common.mlp_model(hidden_sizes=(256, 128)))
        else:
            features, dense = ((16, 32), (64,)) if args.wide else ((8, 16), (32,))
            config = common.fashion_mnist(common.cnn_model(conv_features=features, dense_sizes=dense))
    else:
        raise ValueError(f"unknown row {args.row!r}; choose one of {ROWS}")
    if args.row == "distilled":
        config.distill.update(temperature=float(args.temperature), alpha=float(args.alpha))
    if args.row == "pruned":
        config.opt.update(lr=3e-4, warmup_steps=50)
        config.train.epochs = 2.0
        config.prune.update(target_sparsity=float(args.sparsity), start_step=0, end_step=600, every=50,
                            scope=args.scope)
    if args.row == "shrunk":
        config.opt.update(lr=float(args.lr), warmup_steps=50)
        config.train.epochs = float(args.epochs or 5.0)
    if args.fm:
        if args.row not in ("student", "distilled", "shrunk") or args.fm not in ("mixup", "cutmix", "crop"):
            raise ValueError(f"fm={args.fm!r}: function matching is fm=mixup, cutmix or crop, for the "
                             "student, distilled and shrunk rows")
        mix = "" if args.fm == "crop" else f"|{args.fm}(alpha=1.0)"
        config.data.augment = f"random_crop(pad=2)|flip_lr{mix}"
        config.distill.update(temperature=1.0, alpha=1.0)  # Read when distill.teacher is set.
        if args.row != "shrunk":
            config.opt.update(schedule="cosine", warmup_steps=100)
            config.train.epochs = float(args.epochs or 10.0)
    if args.row == "qat":
        config.quant.mode = "qat"
    return common.shrink_for_smoke(config) if args.smoke else config


def get_sweep(name):
    if name == "seeds":
        return common.product(seed=range(3))
    if name == "lr":
        return common.lr_seed_sweep(lrs=(3e-4, 1e-3, 3e-3), seeds=range(3))
    raise ValueError(f"unknown sweep {name!r}; this config has: seeds, lr")
