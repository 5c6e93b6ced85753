"""TFDS builder for scikit-learn's 8x8 digits: a tiny real dataset for tests and smoke runs."""

from research.data.digits.builder import Digits

__all__ = ["Digits"]
