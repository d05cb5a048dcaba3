"""The chunk-index contract on the embedded server (noida-db) and, given DOCPIPE_TEST_ELASTICSEARCH_URL,
on a real Elasticsearch."""

import os

import pytest
from elasticsearch import Elasticsearch

from tests.contract.chunk_index import ChunkIndexContract

pytestmark = pytest.mark.integration


class TestChunkIndexOnNoida(ChunkIndexContract):
    @pytest.fixture
    def es(self, noida):
        with Elasticsearch(noida.elasticsearch_url, request_timeout=30) as client:
            yield client


ELASTICSEARCH_URL = os.environ.get("DOCPIPE_TEST_ELASTICSEARCH_URL")

if ELASTICSEARCH_URL:  # no Elasticsearch runs on CI's machine: there the class is not defined, not skipped

    class TestChunkIndexOnElasticsearch(ChunkIndexContract):
        @pytest.fixture
        def es(self):
            with Elasticsearch(ELASTICSEARCH_URL, request_timeout=30) as client:
                yield client
