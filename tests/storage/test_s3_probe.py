"""The stdlib presence check (``storage.s3_probe``): botocore's own signature, and "stored"
only when every blob is, on a real S3 endpoint; anything doubtful answers False."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest

from registry.config import StaticAwsKeys, static_aws_keys
from registry.storage.s3 import S3BlobStore
from registry.storage.s3_probe import S3Presence, sigv4_headers
from tests.fixtures.s3 import free_port


@pytest.mark.parametrize("token", [None, "tok/en+=="])
def test_the_signature_is_botocores(token: str | None) -> None:
    keys = StaticAwsKeys("AKIDEXAMPLE", "se/cr+et", token, "eu-west-3")
    path = "/bucket/pre%20fix/sha256/ab/cdef"
    req = botocore.awsrequest.AWSRequest(method="HEAD", url=f"http://127.0.0.1:9000{path}")
    creds = botocore.credentials.Credentials("AKIDEXAMPLE", "se/cr+et", token)
    botocore.auth.S3SigV4Auth(creds, "s3", "eu-west-3").add_auth(req)
    when = datetime.strptime(req.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    ours = sigv4_headers("HEAD", "127.0.0.1:9000", path, keys, now=when)
    assert ours["authorization"] == req.headers["Authorization"]


def _blob(store: S3BlobStore, tmp_path: Path, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    f = tmp_path / sha
    f.write_bytes(data)
    store.put_file(sha, f)
    return sha


def test_stored_only_when_every_blob_is(s3_server: str, s3_bucket: str, tmp_path: Path) -> None:
    keys = static_aws_keys()
    assert keys is not None  # the moto fixture's keys
    store = S3BlobStore(s3_bucket, "some/prefix", endpoint_url=s3_server)
    a, b = _blob(store, tmp_path, b"a" * 10), _blob(store, tmp_path, b"b" * 20)
    probe = S3Presence(s3_server, s3_bucket, "some/prefix", keys)
    assert probe.all_stored([a, b])
    missing = hashlib.sha256(b"never stored").hexdigest()
    assert not probe.all_stored([a, missing, b])
    store.delete(b)
    assert not probe.all_stored([a, b])
    assert not S3Presence(s3_server, s3_bucket, "other", keys).all_stored([a])
    assert not S3Presence(s3_server, "no-such-bucket-x", "some/prefix", keys).all_stored([a])
    dead = f"http://127.0.0.1:{free_port()}"
    assert not S3Presence(dead, s3_bucket, "some/prefix", keys).all_stored([a])
    store.close()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"AWS_ACCESS_KEY_ID": "k"}, None),
        ({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, ("k", "s", None, "us-east-1")),
        (
            {
                "AWS_ACCESS_KEY_ID": "k",
                "AWS_SECRET_ACCESS_KEY": "s",
                "AWS_SESSION_TOKEN": "t",
                "AWS_DEFAULT_REGION": "eu-west-1",
            },
            ("k", "s", "t", "eu-west-1"),
        ),  # fmt: skip
        ({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_PROFILE": "p"}, None),
        ({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "https_proxy": "http://p"}, None),
    ],
)
def test_keys_only_when_boto3_would_sign_with_them_as_they_are(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: Any
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                 "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    keys = static_aws_keys()
    got = None if keys is None else (keys.access_key, keys.secret_key, keys.session_token,
                                     keys.region)  # fmt: skip
    assert got == expected
