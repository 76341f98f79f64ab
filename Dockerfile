# The collapse-watch collector image (used by docker-compose.yml).
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# CPU-only torch first, from the PyTorch CPU index, so the project's pin does not pull a CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

WORKDIR /app
COPY pyproject.toml README.md ./
COPY collector ./collector
COPY migrations ./migrations
RUN pip install .

RUN useradd --create-home --uid 10001 collapse \
    && mkdir -p /var/lib/collapse-watch && chown collapse /var/lib/collapse-watch
USER collapse
EXPOSE 9108
CMD ["collapse-watch", "run", "--config", "/etc/collapse-watch/config.yml"]
