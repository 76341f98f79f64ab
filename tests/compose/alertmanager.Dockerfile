# Stand-in for prom/alertmanager: Debian's prometheus-alertmanager (0.25, the version
# docker-compose.yml pins), plus wget for the shipped health check.
ARG BASE_IMAGE=collapse-watch-test/base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-alertmanager wget >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /alertmanager && chown nobody:nogroup /alertmanager
USER nobody
EXPOSE 9093
ENTRYPOINT ["/usr/bin/prometheus-alertmanager"]
