# docpipe: one image for the API, the workers, beat and the migration step (the command picks the role).
# No secret is baked in: every credential arrives through the environment at run time.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false DOCPIPE_DATA_DIR=/data

# torch first, so the dependency resolution below does not pick a build of its own. The default build of
# torch carries CUDA (what the GPU worker needs); for CPU-only images pass --build-arg TORCH_INDEX_URL=<the
# PyTorch CPU wheel index> to get a much smaller image.
# Tesseract reads scanned PDF pages and images (English); more languages with their Debian packages, e.g.
# --build-arg OCR_PACKAGES="tesseract-ocr-deu tesseract-ocr-fra", and DOCPIPE_OCR_LANGUAGES=eng+deu+fra.
ARG OCR_PACKAGES=""
RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr ${OCR_PACKAGES} \
    && rm -rf /var/lib/apt/lists/*

ARG TORCH_SPEC="torch>=2.4"
ARG TORCH_INDEX_URL=""
RUN pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$TORCH_SPEC"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY workers ./workers
COPY cli ./cli
COPY api ./api
COPY migrations ./migrations
RUN pip install . && python -c "import api.app, workers.app"

RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin docpipe \
    && mkdir -p /data && chown docpipe:docpipe /data
USER docpipe
VOLUME ["/data"]
EXPOSE 8000

CMD ["docpipe", "api", "--host", "0.0.0.0", "--port", "8000"]
