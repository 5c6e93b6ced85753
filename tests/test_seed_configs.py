"""The seed systems' configs, and the binary task the toy one needs (task=binary: one sigmoid
output and binary cross-entropy, with precision, recall and F1 of class 1 and ROC AUC): the toy
MLP learns two moons and draws plots/predictions.png; the MNIST configs say in one line,
offline, which flag runs them on Fashion-MNIST, and train there with it."""

import os
import socket

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from configs import digits_mlp, mnist_cnn, mnist_mlp, sentiment, toy_mlp
from research import tasks
from research.data import sources
from research.errors import UserError
from research.train import loop


def test_the_binary_summary_is_sklearns():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300).astype(np.int32)
    logits = rng.normal(size=300) + 1.5 * labels
    task = tasks.BinaryClassification()
    sums = task.eval_sums(jnp.asarray(logits[:, None], jnp.float32),
                          {"label": jnp.asarray(labels), "mask": jnp.ones(300, bool)})
    summary, confusion = task.summarize(sums)
    predicted = (logits > 0).astype(int)
    assert summary["accuracy"] == pytest.approx((predicted == labels).mean())
    assert summary["precision"] == pytest.approx(precision_score(labels, predicted))
    assert summary["recall"] == pytest.approx(recall_score(labels, predicted))
    assert summary["f1"] == pytest.approx(f1_score(labels, predicted))
    assert summary["roc_auc"] == pytest.approx(roc_auc_score(labels, logits), abs=2e-3)  # 4,096 bins.
    assert confusion.sum() == 300


def test_the_toy_mlp_learns_two_moons_and_draws_its_boundary(tfds_dir, tmp_path):
    config = toy_mlp.get_config()
    config.data.tfds_dir = tfds_dir
    config.train.update(epochs=0.0, steps=600, eval_every=600)
    results = loop.train_and_evaluate(config, str(tmp_path / "toy"))
    assert results["eval/test/accuracy"] > 0.85 and results["eval/test/roc_auc"] > 0.9, results
    assert os.path.getsize(tmp_path / "toy" / "plots" / "predictions.png") > 10_000


def test_binary_needs_two_classes(tfds_dir, tmp_path):
    config = digits_mlp.get_config()
    config.data.tfds_dir = tfds_dir
    config.task = "binary"
    with pytest.raises(UserError, match="task=binary needs two classes; 'digits' has 10"):
        loop.train_and_evaluate(config, str(tmp_path / "run"))


@pytest.mark.parametrize("module", [mnist_cnn, mnist_mlp], ids=["cnn", "mlp"])
def test_mnist_offline_names_the_fashion_mnist_flag_which_trains_the_same_model(
        module, tfds_dir, tmp_path, monkeypatch):
    config = module.get_config("smoke=True")
    config.data.tfds_dir = str(tmp_path / "tfds")
    with monkeypatch.context() as patch:
        def no_dns(host, *args, **kwargs):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        patch.setattr(socket, "getaddrinfo", no_dns)  # Offline, whatever this machine is.
        for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
            patch.delenv(proxy, raising=False)
        with pytest.raises(UserError, match="or run the same model on fashion_mnist with "
                                            "--config.data.name=fashion_mnist$"):
            loop.train_and_evaluate(config, str(tmp_path / "mnist"))
    if module is mnist_cnn:  # The message is the same; the MLP trains in a fraction of the time.
        return
    if not os.path.isdir("/usr/share/datasets/fashion-mnist"):
        pytest.skip("no Fashion-MNIST files here (scripts/setup.sh installs them as root)")
    config.data.update(name="fashion_mnist", tfds_dir=tfds_dir)
    config.train.eval_every = 20  # One pass over the 10,000 test images.
    results = loop.train_and_evaluate(config, str(tmp_path / "fashion"))
    assert results["step"] == 20 and results["eval/test/accuracy"] > 0.3


def test_data_classes_keeps_and_relabels_the_named_classes():
    split = sources.Split(arrays={"label": np.array([0, 1, 2, 3, 4, 2, 0], np.int32),
                                  "x": np.arange(7)}, num_classes=5, class_names=("a", "b", "c", "d", "e"))
    kept = sources.only_classes(split, ("c", "a"), "toy")
    assert kept.class_names == ("c", "a") and kept.num_classes == 2
    np.testing.assert_array_equal(kept.arrays["x"], [0, 2, 5, 6])
    np.testing.assert_array_equal(kept.arrays["label"], [1, 0, 0, 1])
    with pytest.raises(UserError, match=r"data.classes=\['c', 'z'\]: 'toy' has the classes"):
        sources.only_classes(split, ("c", "z"), "toy")


def test_the_sentiment_model_trains_on_its_offline_stand_in(tfds_dir, tmp_path):
    config = sentiment.get_config("data=bbc_standin,smoke=True")
    assert config.task == "binary" and tuple(config.data.classes) == ("business", "tech")
    config.data.update(tfds_dir=tfds_dir, vocab_size=400, max_len=64)
    config.model.update(max_len=64, hidden=16, depth=1, heads=2, mlp_dim=32)
    config.train.eval_every = 20
    results = loop.train_and_evaluate(config, str(tmp_path / "standin"))
    assert results["step"] == 20 and 0 <= results["eval/test/roc_auc"] <= 1
    every_topic = config.data.copy_and_resolve_references()
    every_topic.classes = ()
    labels = sources.load_split(every_topic, "test").arrays["label"]
    confusion = np.asarray(results["eval/test/confusion_matrix"])
    assert confusion.shape == (2, 2)
    assert confusion.sum(axis=1).tolist() == [(labels == 0).sum(), (labels == 4).sum()]  # Business, tech.
