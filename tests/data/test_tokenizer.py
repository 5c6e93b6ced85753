import numpy as np
import pytest

from research.data import tokenizer
from research.data.bbc_news import builder
from research.errors import UserError

VOCAB = 500


@pytest.fixture(scope="module")
def texts():
    return builder.read_articles()[1][::20]  # 112 articles of every class.


@pytest.fixture(scope="module")
def trained(texts, tmp_path_factory):
    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.model"
    return tokenizer.train(texts, VOCAB, str(path)), path


def test_training_twice_writes_the_same_bytes(texts, trained, tmp_path):
    _, path = trained
    again = tmp_path / "again.model"
    tokenizer.train(texts, VOCAB, str(again))
    assert again.read_bytes() == path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.model"]  # No temporary left.


def test_special_ids_and_vocab_size(trained):
    tok, path = trained
    loaded = tokenizer.load(str(path))
    assert tok.vocab_size == loaded.vocab_size == VOCAB
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)


def test_decode_gives_back_the_text(texts, trained):
    tok, _ = trained
    sample = list(texts[:5]) + ["Shares rose 5% in London.\n\nThe  bank said:  \"no\"."]
    for text, ids in zip(sample, tok.encode_ids(sample, add_bos=True, add_eos=True), strict=True):
        assert ids.dtype == np.int32 and ids[0] == tok.bos_id and ids[-1] == tok.eos_id
        assert tok.decode(ids) == text


def test_unseen_characters_survive_as_bytes(trained):
    tok, _ = trained
    text = "naïve 日本語 😀 \u2603"
    (ids,) = tok.encode_ids([text])
    assert tok.unk_id not in ids
    assert tok.decode(ids) == text


def test_encode_pads_masks_and_truncates(trained):
    tok, _ = trained
    short, long = "The government said", "The government said " * 20
    (short_ids,) = tok.encode_ids([short], add_bos=True, add_eos=True)
    tokens, mask = tok.encode([short, long], max_len=16, add_bos=True, add_eos=True)
    assert tokens.shape == mask.shape == (2, 16) and tokens.dtype == np.int32 and mask.dtype == bool
    n = len(short_ids)
    np.testing.assert_array_equal(tokens[0, :n], short_ids)
    assert mask[0].tolist() == [True] * n + [False] * (16 - n)
    assert np.all(tokens[0, n:] == tok.pad_id)
    assert mask[1].all() and tokens[1, 0] == tok.bos_id and tok.eos_id not in tokens[1]
    assert tok.decode(tokens[1]) == long[: len(tok.decode(tokens[1]))]


def test_missing_or_corrupt_model_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no tokenizer model"):
        tokenizer.load(str(tmp_path / "missing.model"))
    (tmp_path / "bad.model").write_bytes(b"not a model" * 10)
    with pytest.raises(UserError, match="not a SentencePiece model"):
        tokenizer.load(str(tmp_path / "bad.model"))


def test_vocab_the_texts_cannot_fill_is_a_user_error(texts, tmp_path):
    with pytest.raises(UserError, match="data.vocab_size"):
        tokenizer.train(texts[:3], 8000, str(tmp_path / "t.model"))
    assert not list(tmp_path.iterdir())


def test_a_char_tokenizer_has_a_piece_a_character_and_reads_tiny_shakespeare_as_nanogpt_does(tmp_path):
    from research.data.tiny_shakespeare import builder

    splits = builder.read_splits()
    assert (len(splits["train"]), len(splits["test"])) == (1_003_854, 111_540)  # nanoGPT's split.
    with open(builder.TEXT_FILE, encoding="utf-8") as f:
        assert splits["train"] + splits["test"] == f.read()  # Contiguous, nothing lost.
    tok = tokenizer.train([splits["train"]], 8000, str(tmp_path / "char.model"), kind="char")
    assert tok.vocab_size == 65 + 4  # nanoGPT's 65 characters, and pad/unk/bos/eos.
    (ids,) = tok.encode_ids([splits["test"]])
    assert len(ids) == len(splits["test"])  # One id a character, newlines and spaces included.
    assert tok.decode(ids) == splits["test"]
    assert tokenizer.load(str(tmp_path / "char.model")).encode_ids(["é"])[0].tolist() == [tokenizer.UNK_ID]
    with pytest.raises(UserError, match=r"data.tokenizer='word'; choose one of \['bpe', 'char'\]"):
        tokenizer.train(["a"], 10, str(tmp_path / "w.model"), kind="word")
