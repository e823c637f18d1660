"""The fake model the plumbing tests use (tests/fake_model.py) is what they take it for: a model
folder semsearch accepts as it is, the same on every build, and near for texts that share
words."""

import numpy as np
from fake_model import DIMENSION, build_fake_model

from semsearch.encoder import load_encoder
from semsearch.model_folder import default_model_path, model_fingerprint

TEXTS = ["Cats sleep for most of the day.", "Mars is called the red planet.",
         "Bake the bread in a hot oven.", "Boil pasta in salted water."]


def test_it_loads_like_any_model_folder_with_the_default_models_tokens(fake_model):
    encoder = load_encoder(fake_model, precision="fp32")
    assert (encoder.dimension, encoder.pooling) == (DIMENSION, "mean")
    default = load_encoder(precision="fp32")
    assert encoder.max_seq_length == default.max_seq_length
    assert encoder.token_counts(TEXTS).tolist() == default.token_counts(TEXTS).tolist()
    vectors = encoder.encode(TEXTS + ["...", ""])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)  # none is zero


def test_every_build_is_the_same_model(fake_model, tmp_path):
    again = build_fake_model(tmp_path / "again")
    assert model_fingerprint(again) == model_fingerprint(fake_model)
    assert model_fingerprint(fake_model) != model_fingerprint(default_model_path())


def test_texts_that_share_words_are_nearest(fake_model):
    encoder = load_encoder(fake_model, precision="fp32")
    texts = encoder.encode(TEXTS)
    queries = encoder.encode(["sleeping cats", "the red planet", "bread oven", "salted pasta"])
    scores = queries @ texts.T
    assert scores.argmax(axis=1).tolist() == [0, 1, 2, 3]
    assert (np.diag(scores) - np.sort(scores, axis=1)[:, -2]).min() > 0.05  # and clearly
    same = encoder.encode(["Mars is called the red planet.", "planet red the called is Mars"])
    assert same[0] @ same[1] > 0.999  # a bag of words: the order of the words does not count
