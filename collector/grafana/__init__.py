"""Grafana assets: the dashboard generator (``dashboards``) and the API uploader (``push``)."""
