"""The ``/metrics`` corner: what a scrape reads and how it answers.

``snapshot`` reads the store once per scrape into one ``Snapshot`` (the one read path);
``exporter`` and ``reliability`` turn that snapshot into metric families; ``exposition`` writes the
text format; ``server`` mounts the collector's endpoints (``/metrics``, ``/alerts``, ``/healthz``,
``/readyz``) on the hardened HTTP server of ``http_server``; ``health`` answers the probes and
``outage`` logs a database outage once, not once per scrape.
"""
