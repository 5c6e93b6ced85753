"""Compares two workdirs bit for bit: results.json and the params of the latest checkpoint.

  .venv/bin/python scripts/compare_runs.py runs/a runs/b
Prints what differs and exits 1 if anything does.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(workdir_a: str, workdir_b: str) -> int:
    import jax
    import numpy as np

    from research import checkpoint

    def load(workdir):
        with open(os.path.join(workdir, "results.json")) as f:
            results = json.load(f)
        checkpoints = checkpoint.Checkpoints(os.path.join(workdir, "checkpoints"), read_only=True)
        params = checkpoints.restore_raw(checkpoints.resolve("latest"))["params"]
        checkpoints.close()
        return results, params

    (results_a, params_a), (results_b, params_b) = load(workdir_a), load(workdir_b)
    same_results = results_a == results_b
    leaves_a, leaves_b = jax.tree.leaves(params_a), jax.tree.leaves(params_b)
    same_params = jax.tree.structure(params_a) == jax.tree.structure(params_b) and all(
        np.array_equal(a, b) for a, b in zip(leaves_a, leaves_b, strict=True))
    count = sum(np.size(a) for a in leaves_a)
    print(f"results.json identical: {same_results}")
    print(f"final params bitwise identical: {same_params} ({len(leaves_a)} arrays, {count:,} values)")
    return 0 if same_results and same_params else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
