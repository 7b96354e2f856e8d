"""Settings from LORAREG_* environment variables: the only module that reads the environment."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from registry.errors import InvalidInput


def _default_home() -> Path:
    return Path.home() / ".lorareg"


# A region's name: short and canonical, it is a label value, a query parameter and a key.
REGION_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
MAX_REGIONS = 32
_STORAGE_URL = re.compile(r"(s3://[a-z0-9][a-z0-9.-]{1,62}(/[^\s?#]*)?|file:///[^\s?#]*)")
_HTTP_URL = re.compile(r"https?://[^/\s?#]+(/\S*)?")


def check_region_name(name: str) -> str:
    """``name`` when it is a canonical region name, else ValueError saying what is allowed."""
    if not isinstance(name, str) or not REGION_NAME.fullmatch(name):
        raise ValueError(
            f"{str(name)[:40]!r} is not a region name: lowercase letters, digits and '-',"
            " 1 to 32 characters, starting with a letter or digit"
        )
    return name


class RegionConfig(BaseModel):
    """One regional store, as written in ``LORAREG_REGIONS``.

    ``mode``: ``replicate`` (lorareg's workers copy each blob from the primary store) or
    ``external`` (the storage's own replication fills it; lorareg only checks presence).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(max_length=32)
    storage_url: str = Field(max_length=1024)
    endpoint_url: str | None = Field(default=None, max_length=1024)
    # The AWS credentials chain of this region's store (a profile name); None: the default.
    aws_profile: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.+@-]{1,64}$")
    mode: Literal["replicate", "external"] = "replicate"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_region_name(value)

    @field_validator("storage_url")
    @classmethod
    def _storage_url(cls, value: str) -> str:
        if not _STORAGE_URL.fullmatch(value):
            raise ValueError(
                f"{value[:80]!r}: use s3://bucket/prefix (a bucket of 3 to 63 characters) or file:///absolute/path"
            )
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not _HTTP_URL.fullmatch(value):
            raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:9000")
        return value


class Settings(BaseSettings):
    """Where the catalog and the weights live, and how to reach a remote server.

    Embedded defaults: a SQLite file and a blob folder under ``LORAREG_HOME``.
    """

    model_config = SettingsConfigDict(env_prefix="LORAREG_", extra="ignore")

    home: Path = Field(default_factory=_default_home)
    database_url: str | None = None
    storage_url: str | None = None
    s3_endpoint_url: str | None = None
    # Remote mode for the CLI / client.
    url: str | None = None
    token: str | None = None
    cache_dir: Path | None = None
    # Presigned URLs live this long; the resolve route reuses them for part of it.
    presign_ttl_s: int = Field(default=3600, gt=0)
    # Presigned uploads a namespace may hold open (planned, not yet committed, younger
    # than presign_ttl_s): each is a row, so a caller cannot grow the table without bound.
    max_open_uploads: int = Field(default=10_000, ge=1, le=10_000_000)
    # Hard cap on a safetensors JSON header: larger headers are refused as hostile.
    max_header_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    # Multipart upload part size for S3 (and the chunk size for streaming copies).
    part_size: int = Field(default=16 * 1024 * 1024, gt=0)
    # Parts in flight per S3 upload (boto3's own transfer manager uses 10).
    s3_max_concurrency: int = Field(default=10, gt=0)
    author: str | None = None
    # "auto": open on a loopback address, tokens required anywhere else;
    # "required": tokens always; "open": no tokens (refused off loopback).
    auth: Literal["auto", "required", "open"] = "auto"
    # Background loops of `lorareg serve` (webhook deliveries).
    webhook_interval_s: float = Field(default=1.0, gt=0)
    # Signs the dashboard's session cookies and CSRF tokens, on top of the token's stored
    # hash; give every replica the same value. Unset, anyone who can read the tokens
    # table could mint a dashboard session.
    secret_key: SecretStr | None = None
    # Webhook hosts allowed although internal (loopback, private): exact host names or IP
    # literals as written in the URL, comma-separated. Default: none (public only).
    webhook_allow_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Server-side base model sources a server may read for an admin over HTTP: folders
    # under these roots and these S3 buckets, comma-separated. Default: none (hf:// only).
    base_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    base_buckets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Regional stores (issue 20): a JSON list of RegionConfig objects. Unset: one store.
    regions: Annotated[list[RegionConfig], NoDecode] = Field(default_factory=list)
    # The name the primary store (storage_url) is known by among the regions.
    primary_region: str = "primary"
    # Where this process (reader, server replica, sync node, CLI) is; None: the primary.
    region: str | None = None
    # Regions tried, in order, after the reader's own when its copy is missing; the
    # primary is always tried last. Comma-separated.
    region_fallback: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Replication workers: how long a claimed copy stays leased, and the pause between
    # rounds when there is nothing to do.
    region_lease_s: float = Field(default=300.0, gt=0, le=86_400)
    region_interval_s: float = Field(default=1.0, gt=0, le=3600)

    @field_validator("regions", mode="before")
    @classmethod
    def _regions_json(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return []
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"is not JSON ({exc.msg} at character {exc.pos})") from None
            if not isinstance(value, list):
                raise ValueError('must be a JSON list: [{"name": "eu", "storage_url": ...}]')
        if isinstance(value, list) and len(value) > MAX_REGIONS:
            raise ValueError(f"at most {MAX_REGIONS} regions")
        return value

    @field_validator("primary_region")
    @classmethod
    def _primary_name(cls, value: str) -> str:
        return check_region_name(value)

    @field_validator("region")
    @classmethod
    def _region_name(cls, value: str | None) -> str | None:
        return None if value is None or value == "" else check_region_name(value)

    @field_validator("region_fallback", mode="before")
    @classmethod
    def _fallback_list(cls, value: object) -> object:
        if isinstance(value, str):
            if len(value) > 40 * MAX_REGIONS:
                raise ValueError("too long")
            value = [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, list):
            if len(value) > MAX_REGIONS + 1:
                raise ValueError(f"at most {MAX_REGIONS} regions")
            for item in value:
                check_region_name(item)
            if len(set(value)) != len(value):
                raise ValueError("names a region twice")
        return value

    @model_validator(mode="after")
    def _regions_consistent(self) -> Settings:
        names = [r.name for r in self.regions]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"LORAREG_REGIONS names region {twice[0]!r} twice")
        if self.primary_region in names:
            raise ValueError(
                f"LORAREG_REGIONS: {self.primary_region!r} is the primary store's name"
                " (LORAREG_PRIMARY_REGION); give the regional store another name"
            )
        if self.regions:
            known = [self.primary_region, *names]
            listed = ", ".join(known)
            if self.region is not None and self.region not in known:
                raise ValueError(f"LORAREG_REGION={self.region!r} is not a region ({listed})")
            for item in self.region_fallback:
                if item not in known:
                    raise ValueError(
                        f"LORAREG_REGION_FALLBACK: {item!r} is not a region ({listed})"
                    )
        return self

    @property
    def region_names(self) -> list[str]:
        """Every region's name: the primary's first, then ``LORAREG_REGIONS`` in order."""
        return [self.primary_region, *(r.name for r in self.regions)]

    @property
    def replica_regions(self) -> tuple[str, ...]:
        """The non-primary regions every new blob needs a copy in (empty: no regions)."""
        return tuple(r.name for r in self.regions)

    @field_validator("webhook_allow_hosts", "base_roots", "base_buckets", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("base_roots")
    @classmethod
    def _absolute_roots(cls, roots: list[Path]) -> list[Path]:
        # A relative root would depend on the server's working folder; ".." hides where.
        for root in roots:
            if not root.is_absolute() or ".." in root.parts:
                raise ValueError(f"{root}: give absolute folders without '..'")
        return roots

    # Behind a TLS-terminating proxy: dashboard cookies are Secure whatever the proxy says.
    behind_https: bool = False
    # Concurrent long polls of the event feed one token may hold (per server process).
    max_waits_per_token: int = Field(default=8, ge=1, le=10_000)

    @field_validator("url", "s3_endpoint_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"https?://[^/\s?#]+(/\S*)?", value):
            raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:8080")
        return value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'catalog.db'}"

    @property
    def effective_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return (self.home / "blobs").resolve().as_uri()

    @property
    def effective_cache_dir(self) -> Path:
        if self.cache_dir:
            return self.cache_dir
        return Path.home() / ".cache" / "lorareg"

    @property
    def effective_author(self) -> str:
        if self.author:
            return self.author
        import getpass

        try:
            return getpass.getuser()
        except Exception:  # no passwd entry in some containers
            return "unknown"


@dataclass(frozen=True)
class StaticAwsKeys:
    """AWS keys given in the environment, as botocore's first provider reads them."""

    access_key: str
    secret_key: str
    session_token: str | None
    region: str
    # The CA bundle boto3 verifies HTTPS endpoints with (AWS_CA_BUNDLE); None: the system's.
    ca_bundle: str | None = None


def static_aws_keys() -> StaticAwsKeys | None:
    """The keys boto3 would sign with when they come plainly from the environment, with
    nothing that could make boto3 send its requests differently (a profile, a proxy, a
    bundle other than AWS_CA_BUNDLE, which comes along); None otherwise. Only for
    ``storage.s3_probe``'s presence check, which falls back to boto3 whenever it cannot
    be sure."""
    env = os.environ
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return None
    unsure = ("AWS_PROFILE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
    if any(env.get(n) or env.get(n.lower()) for n in unsure):
        return None
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    token = env.get("AWS_SESSION_TOKEN") or None
    return StaticAwsKeys(key, secret, token, region, env.get("AWS_CA_BUNDLE") or None)


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with explicit overrides winning.

    A value that does not parse is InvalidInput naming the variable, never a traceback.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise InvalidInput(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    """One line per bad variable: ``LORAREG_PART_SIZE='abc': Input should be ...``."""
    parts = []
    for err in exc.errors():
        if not err["loc"]:  # a check across variables names them in its message
            parts.append(err["msg"].removeprefix("Value error, "))
            continue
        name = "LORAREG_" + "_".join(str(p) for p in err["loc"]).upper()
        value = err.get("input")
        secret = "SECRET" in name or "TOKEN" in name
        shown = "" if isinstance(value, dict) or secret else f"={str(value)[:80]!r}"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{name}{shown}: {msg}")
    return "; ".join(parts)


class VllmPluginSettings(BaseSettings):
    """The vLLM resolver plugin's settings (``LORAREG_VLLM_*``); the registry it asks is
    ``LORAREG_URL`` with ``LORAREG_TOKEN`` (or the embedded catalog when unset).

    Read in vLLM's API server process, where the plugin resolves names.
    """

    model_config = SettingsConfigDict(env_prefix="LORAREG_VLLM_", extra="ignore")

    # What a bare ``acme/client`` serves: a stage or an alias.
    stage: str = "production"
    # The registry's name for the served base model (versions are resolved for it);
    # default: vLLM's model name when it is a Hugging Face repo id, else any base.
    base: str | None = None
    # The node cache: one folder per content id; shared safely by several vLLM processes.
    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "lorareg" / "vllm")
    # Disk budget of the cache; folders no vLLM process uses are evicted, oldest use first.
    cache_bytes: int = Field(default=20 * 1024**3, ge=0)
    # Follow the registry's change feed and switch resolved names when their stage or
    # alias moves; switching calls this vLLM server's own admin endpoints.
    follow: bool = True
    engine_url: str = "http://127.0.0.1:8000"
    # How long a replaced version's folder stays in use after a switch (requests in
    # flight still read it, and vLLM reloads evicted adapters from their path).
    grace_s: float = Field(default=300.0, ge=0)

    @field_validator("engine_url")
    @classmethod
    def _engine_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^/\s?#]+(/\S*)?", value):
            raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:8000")
        return value.rstrip("/")


def load_vllm_plugin_settings() -> VllmPluginSettings:
    """The plugin's settings from the environment; a bad value is InvalidInput."""
    try:
        return VllmPluginSettings()
    except ValidationError as exc:
        raise InvalidInput(_describe(exc).replace("LORAREG_", "LORAREG_VLLM_")) from None
