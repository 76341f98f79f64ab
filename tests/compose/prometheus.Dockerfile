# Stand-in for prom/prometheus: Debian's prometheus (2.42, the version docker-compose.yml pins), plus
# wget for the shipped health check.
ARG BASE_IMAGE=collapse-watch-test/base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus wget >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /prometheus && chown nobody:nogroup /prometheus
USER nobody
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
