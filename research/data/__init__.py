"""Datasets (TFDS builders for offline sources) and the input pipeline."""
