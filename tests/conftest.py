"""Shared fixtures. Storage: tests/fixtures/s3.py; catalog and server: tests/fixtures/catalog.py;
adapters on disk: tests/fixtures/adapters.py."""

import os

# huggingface_hub's own clients time out at 10 s (read once, at its import); a CI machine
# running the suite on two workers has been slower than that on a first request.
os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "60")
os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "60")

pytest_plugins = ["tests.fixtures.s3", "tests.fixtures.catalog", "tests.fixtures.adapters"]
