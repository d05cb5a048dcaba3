"""The index configuration hash: one definition for ingest's first version and for reindexing."""

import json

import pytest

from pipeline.config import default_encoder_path
from pipeline.embed import Encoder
from pipeline.errors import ConfigError
from pipeline.index import config_hash, mapping
from pipeline.reindex import IndexConfig


def test_hash_covers_mapping_model_and_chunking():
    base = IndexConfig.for_model(default_encoder_path(), 200, 40)
    encoder = Encoder(default_encoder_path())
    assert base.dims == 384 and base.model_path == encoder.model_path
    assert base.extra == {"model": encoder.fingerprint(), "chunk_tokens": 200, "chunk_overlap": 40}
    assert base.hash == config_hash(mapping(384), base.extra)
    assert base.hash == IndexConfig.for_model(default_encoder_path(), 200, 40).hash
    assert base.hash != IndexConfig.for_model(default_encoder_path(), 160, 40).hash
    assert base.hash != IndexConfig.for_model(default_encoder_path(), 200, 30).hash


def test_a_copied_model_with_another_length_cap_is_another_model(tmp_path):
    import os
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(default_encoder_path(), copy, copy_function=os.symlink)  # links: no 90 MB copy
    same = IndexConfig.for_model(str(copy), 200, 40)
    assert same.hash == IndexConfig.for_model(default_encoder_path(), 200, 40).hash  # the path is not the model
    target = copy / "sentence_bert_config.json"
    config = json.loads(target.read_text())
    config["max_seq_length"] = 128
    target.unlink()  # replace the link, never the package's file
    target.write_text(json.dumps(config))
    assert IndexConfig.for_model(str(copy), 200, 40).fingerprint != same.fingerprint


@pytest.mark.parametrize("tokens, overlap", [(0, 0), (100, 100), (100, -1)])
def test_bad_chunking_is_refused(tokens, overlap):
    with pytest.raises(ConfigError, match="chunking"):
        IndexConfig.for_model(default_encoder_path(), tokens, overlap)


def test_a_folder_without_a_model_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not a sentence-transformers model folder"):
        IndexConfig.for_model(str(tmp_path), 200, 40)
