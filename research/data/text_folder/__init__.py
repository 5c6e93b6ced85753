"""TFDS builder for a researcher's own text: a folder, glob or list of .txt and .jsonl files."""

from research.data.text_folder.builder import TextFolder, corpus_files

__all__ = ["TextFolder", "corpus_files"]
