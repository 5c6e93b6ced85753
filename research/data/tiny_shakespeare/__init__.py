"""TFDS builder for tiny Shakespeare, from the text shipped in this folder."""

from research.data.tiny_shakespeare.builder import TinyShakespeare

__all__ = ["TinyShakespeare"]
