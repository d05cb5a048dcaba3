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


class TestChunkIndexOnElasticsearch(ChunkIndexContract):
    @pytest.fixture
    def es(self):
        url = os.environ.get("DOCPIPE_TEST_ELASTICSEARCH_URL")
        if not url:
            pytest.skip("set DOCPIPE_TEST_ELASTICSEARCH_URL to run the chunk-index contract on Elasticsearch")
        with Elasticsearch(url, request_timeout=30) as client:
            yield client
