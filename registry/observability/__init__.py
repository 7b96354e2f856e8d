"""Prometheus metrics: the named metric objects (``metrics``) and how they are served
(``exposition``). Importing creates the metric objects only; nothing is served or started."""
