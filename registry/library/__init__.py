"""The adapter library: compose adapters into one adapter, measure interference across a
library, analyze and compress ranks, all exactly from low-rank factors (no d x d matrix).

Pure math: ``factors``, ``compose``, ``interference``, ``analyze``, ``compress``, ``output``.
Use cases over the catalog: ``service`` (compose, compress, analyze) and ``library_map``
(interference with its content-addressed cache). Needs PyTorch (the ``merge`` extra).
"""
