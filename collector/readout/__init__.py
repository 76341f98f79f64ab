"""The ``/metrics`` corner: what a scrape reads and how it answers.

``snapshot`` reads the store once per scrape (the one read path), ``exporter`` and ``reliability``
turn that snapshot into metric families, ``exposition`` writes the text format, ``server`` is the
HTTP server (``/metrics``, ``/alerts``, ``/healthz``, ``/readyz``), ``health`` its probes and
``outage`` the one-line-per-outage log every reader shares.
"""
