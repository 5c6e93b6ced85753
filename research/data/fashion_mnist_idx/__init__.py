"""TFDS builder for Fashion-MNIST read from local IDX files (no download)."""

from research.data.fashion_mnist_idx.builder import DEFAULT_IDX_DIR, FashionMnistIdx

__all__ = ["DEFAULT_IDX_DIR", "FashionMnistIdx"]
