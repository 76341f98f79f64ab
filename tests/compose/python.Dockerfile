# Stand-in for python:3.11-slim, built from the local Debian base (Docker Hub is unreachable here).
# It trusts the CAs the host trusts (ca-certificates.crt from the build context, copied in by
# tests/compose/stack.py), so pip reaches PyPI through a TLS-inspecting proxy as the host does.
ARG BASE_IMAGE=collapse-watch-test/base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        python3 python3-venv ca-certificates >/dev/null \
    && rm -rf /var/lib/apt/lists/*
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
