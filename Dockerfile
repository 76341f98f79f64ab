# The collapse-watch collector image (used by docker-compose.yml).
#
#   docker build -t collapse-watch .
#
# Build arguments (defaults suit a machine with internet access):
#   BASE_IMAGE       any Debian-like image with python3 (3.11+) and its venv module
#   TORCH_VERSION    the CPU build of torch the project pins
#   TORCH_INDEX_URL  where that build comes from; empty: PyPI and PIP_FIND_LINKS only
#   PIP_FIND_LINKS   a folder URL of local wheels (e.g. the CPU torch wheel), as pip's --find-links
#   PIP_TRUSTED_HOST the host of a plain-http PIP_FIND_LINKS
#   EXTRAS           the package's extras to install: `local` (default: in-process embeddings with
#                    sentence-transformers and CPU torch); empty for a torch-free collector whose
#                    embeddings come from an `embedding_server:` (docs/performance.md)
# tests/compose/ builds it from a local Debian base with a local find-links (see docs/containers.md).
ARG BASE_IMAGE=python:3.11-slim

# --- build the wheel (the wheel carries migrations/ as collector/_migrations, see setup.py) ---------
FROM ${BASE_IMAGE} AS wheel
ARG EXTRAS=local
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY collector ./collector
COPY migrations ./migrations
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip wheel --no-deps --wheel-dir /dist . \
    && EXTRAS="$EXTRAS" python3 -c "import os, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + [r for e in os.environ['EXTRAS'].split(',') if e for r in p['optional-dependencies'][e]]))" \
        > /requirements.txt

# --- the runtime: a virtualenv with the dependencies, then the wheel --------------------------------
FROM ${BASE_IMAGE}
ARG EXTRAS=local
ARG TORCH_VERSION=2.13.0+cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_FIND_LINKS=
ARG PIP_TRUSTED_HOST=
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/collapse-watch/bin:$PATH

# CPU torch first (an unpinned torch resolves to a multi-GB CUDA build), then the dependencies
# pyproject.toml lists, each in its own layer: a code change (or any other pyproject.toml edit)
# reinstalls only the wheel, since the requirements layer is keyed on the list's content.
RUN python3 -m venv /opt/collapse-watch \
    && case ",$EXTRAS," in *,local,*) \
        pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} "torch==${TORCH_VERSION}";; esac
COPY --from=wheel /requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY --from=wheel /dist /tmp/dist
RUN pip install --no-deps /tmp/dist/*.whl && rm -r /tmp/dist \
    && pip check

RUN useradd --create-home --uid 10001 collapse \
    && mkdir -p /var/lib/collapse-watch && chown collapse /var/lib/collapse-watch
USER collapse
WORKDIR /var/lib/collapse-watch
EXPOSE 9108
# Healthy once /readyz answers 200: the database is reachable and at the schema head, and (in `run`)
# the scheduler runs (collector/readout/health.py; /healthz is the liveness check: the process answers).
HEALTHCHECK --interval=10s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9108/readyz', timeout=8).status != 200)"]
CMD ["collapse-watch", "run", "--config", "/etc/collapse-watch/config.yml"]
