"""The self-contained HTML report for people who do not run Grafana (`collapse-watch report`)."""
