"""Are these blobs stored? Signed HEAD requests with the standard library, without boto3.

For the unchanged re-push (``client.repush``): importing boto3 and building a client costs
a few tenths of a second, more than the whole answer should take. This asks the same
question as ``S3BlobStore.exists`` with one SigV4-signed ``HEAD`` per blob over one
keep-alive connection, and is conservative by construction: only a 200 counts as stored;
anything else (404, 403, a redirect, a timeout, an unreachable endpoint) answers "not
sure", and the caller takes the full push, where boto3 asks again and reports errors.
So a wrong guess here can cost time, never a blob.

Only for an explicit endpoint (MinIO, R2, Ceph, moto: path-style, as ``S3BlobStore``
addresses them) and keys given in the environment (``config.static_aws_keys``).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from registry.config import StaticAwsKeys
from registry.storage.base import blob_key, check_sha256

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
TIMEOUT_S = 5.0


def sigv4_headers(
    method: str,
    host: str,
    path: str,
    keys: StaticAwsKeys,
    *,
    now: datetime | None = None,
) -> dict[str, str]:
    """The headers of an AWS Signature Version 4 request with an empty body and no query
    (``path`` already URI-encoded, as S3 signs it: each segment once)."""
    amz_date = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    headers = {"host": host, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": amz_date}
    if keys.session_token:
        headers["x-amz-security-token"] = keys.session_token
    names = sorted(headers)
    signed = ";".join(names)
    canonical = "\n".join(
        [method, path, "", "".join(f"{n}:{headers[n]}\n" for n in names), signed, EMPTY_SHA256]
    )
    scope = f"{day}/{keys.region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + keys.secret_key).encode()
    for part in (day, keys.region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={keys.access_key}/{scope},"
        f" SignedHeaders={signed}, Signature={signature}"
    )
    return headers


class S3Presence:
    """``all_stored(shas)``: True only when a HEAD of every blob's key answered 200."""

    def __init__(self, endpoint_url: str, bucket: str, prefix: str, keys: StaticAwsKeys) -> None:
        parts = urlsplit(endpoint_url)
        self.secure = parts.scheme == "https"
        self.netloc = parts.netloc
        self.base = parts.path.rstrip("/")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.keys = keys

    def path(self, sha256: str) -> str:
        key = blob_key(check_sha256(sha256))
        key = f"{self.prefix}/{key}" if self.prefix else key
        return quote(f"{self.base}/{self.bucket}/{key}", safe="/-_.~")

    def all_stored(self, shas: Iterable[str]) -> bool:
        conn: http.client.HTTPConnection
        if self.secure:
            import ssl

            context = ssl.create_default_context(cafile=self.keys.ca_bundle)
            conn = http.client.HTTPSConnection(self.netloc, timeout=TIMEOUT_S, context=context)
        else:
            conn = http.client.HTTPConnection(self.netloc, timeout=TIMEOUT_S)
        try:
            for sha in shas:
                path = self.path(sha)
                conn.request(
                    "HEAD", path, headers=sigv4_headers("HEAD", self.netloc, path, self.keys)
                )
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    return False
            return True
        except (OSError, http.client.HTTPException, ValueError):
            return False  # not sure: the caller asks through boto3
        finally:
            conn.close()
