"""docker-compose.yml keeps its promises: healthchecks everywhere, migrations first, no secret in the file."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP = ("api", "worker-ingest", "worker-gpu", "beat")


def test_every_service_has_a_healthcheck():
    assert set(SERVICES) == {"es-certs", "elasticsearch", "redis", "postgres", "migrate", "worker-fetch", *APP}
    for name, service in SERVICES.items():
        assert service.get("healthcheck", {}).get("test"), name


def test_migrations_run_once_after_the_database_and_before_everything_of_ours():
    migrate = SERVICES["migrate"]
    assert migrate["restart"] == "no" and "docpipe db upgrade" in " ".join(migrate["command"])
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in APP:
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name


def test_secrets_are_required_from_the_environment_and_never_written_down():
    text = (ROOT / "docker-compose.yml").read_text()
    for var in ("ELASTIC_PASSWORD", "POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        assert f"${{{var}:?" in text
    assert not re.search(r"(PASSWORD|SECRET|API_KEY)\s*[:=]\s*['\"]?[A-Za-z0-9]{6,}['\"]?\s*$", text, re.M)
    docker = (ROOT / "Dockerfile").read_text()
    assert not re.search(r"(PASSWORD|SECRET|KEY)\s*=", docker)
    assert "tesseract-ocr" in docker  # scanned PDFs and images are read in the image too, not needs_ocr


def test_stateful_services_keep_data_in_named_volumes_and_redis_never_evicts_tasks():
    for name, mount in (("elasticsearch", "esdata"), ("redis", "redisdata"), ("postgres", "pgdata")):
        assert any(v.startswith(f"{mount}:") for v in SERVICES[name]["volumes"]), name
        assert mount in COMPOSE["volumes"]
    redis = " ".join(SERVICES["redis"]["command"])
    assert "--appendonly yes" in redis and "--maxmemory-policy noeviction" in redis
    assert SERVICES["elasticsearch"]["environment"]["xpack.security.enabled"] == "true"


def test_elasticsearch_serves_https_with_certificates_from_the_setup_service_and_docpipe_trusts_its_ca():
    es, certs = SERVICES["elasticsearch"], SERVICES["es-certs"]
    assert es["environment"]["xpack.security.http.ssl.enabled"] == "true"
    assert es["depends_on"]["es-certs"]["condition"] == "service_completed_successfully"
    assert "elasticsearch-certutil ca" in certs["command"][-1] and "elasticsearch-certutil cert" in certs["command"][-1]
    assert certs["restart"] == "no" and "https://localhost:9200" in " ".join(es["healthcheck"]["test"])
    for service in ("es-certs", "elasticsearch"):
        assert any(v.startswith("certs:/usr/share/elasticsearch/config/certs") for v in SERVICES[service]["volumes"])
    env = COMPOSE["x-docpipe-env"]
    assert env["DOCPIPE_ELASTICSEARCH_URL"].startswith("https://")
    assert env["DOCPIPE_ELASTICSEARCH_CA_CERTS"].startswith("/certs/")
    for name in APP:
        assert "certs:/certs:ro" in SERVICES[name]["volumes"], name
        assert SERVICES[name]["environment"]["DOCPIPE_ELASTICSEARCH_CA_CERTS"] == env["DOCPIPE_ELASTICSEARCH_CA_CERTS"]


def test_ingest_workers_scale_and_the_gpu_worker_reserves_a_gpu():
    ingest = SERVICES["worker-ingest"]
    assert "container_name" not in ingest and "ports" not in ingest  # both would block --scale
    devices = SERVICES["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
