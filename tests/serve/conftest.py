import pytest

from research.train import loop


@pytest.fixture(scope="module")
def digits_run(tfds_dir, tmp_path_factory):
    """A digits MLP trained 60 steps (to about 60% test accuracy)."""
    from configs import digits_mlp

    config = digits_mlp.get_config()
    config.data.tfds_dir = tfds_dir
    config.train.steps = 60
    workdir = str(tmp_path_factory.mktemp("digits") / "run")
    loop.train_and_evaluate(config, workdir)
    return workdir
