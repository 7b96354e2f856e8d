"""Shared fixtures. Storage: tests/fixtures/s3.py; catalog and server: tests/fixtures/catalog.py;
adapters on disk: tests/fixtures/adapters.py."""

pytest_plugins = ["tests.fixtures.s3", "tests.fixtures.catalog", "tests.fixtures.adapters"]
