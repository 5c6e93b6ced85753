"""Fixed train/test splits for datasets that ship without one."""

import numpy as np


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """{"train": idx, "test": idx}, sorted and disjoint: of each class, in a permutation seeded
    with `seed`, the first round(count * test_fraction) examples go to test, so every class is
    split in the same proportion and the same labels always give the same split."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    test = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        test.append(members[: round(len(members) * test_fraction)])
    test = np.sort(np.concatenate(test))
    train = np.setdiff1d(np.arange(len(labels)), test)
    return {"train": train, "test": test}
