"""The CLI on regions, embedded, with the settings a user sets: ``lorareg regions [status]
--json``, ``policy set --require-regions``, ``fsck --regions`` (exit 1 on a bad copy) and
``delete`` reporting the regional copies it removed."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from cli.main import cli
from registry.config import Settings
from registry.runtime import Runtime
from tests.regions_ops.conftest import RegionBuckets, replicate


def _cli(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {
        "LORAREG_HOME": str(settings.home),
        "LORAREG_DATABASE_URL": settings.effective_database_url,
        "LORAREG_STORAGE_URL": settings.effective_storage_url,
        "LORAREG_S3_ENDPOINT_URL": settings.s3_endpoint_url,
        "LORAREG_PART_SIZE": str(settings.part_size),
        "LORAREG_CACHE_DIR": str(tmp_path / "cli-cache"),
        "LORAREG_AUTHOR": "cli-user",
        "LORAREG_REGIONS": json.dumps([r.model_dump() for r in settings.regions]),
        "LORAREG_URL": None,
    }

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    return run


def test_regions_commands(
    region_settings: Settings,
    region_runtime: Runtime,
    region_buckets: RegionBuckets,
    adapter_library: dict[str, Path],
    tmp_path: Path,
) -> None:
    lorareg = _cli(region_settings, tmp_path)
    assert lorareg("push", str(adapter_library["v1"]), "acme/voice").exit_code == 0
    # Each listing probes every store live (5 s at most): on a loaded machine a first probe
    # can miss that, so ask again, a few times at most, until every store has answered.
    for _ in range(5):
        listed = json.loads(lorareg("regions", "--json").stdout)
        if all(r["state"] == "ok" for r in listed):
            break
    assert [(r["name"], r["mode"], r["state"]) for r in listed] == [
        ("primary", "primary", "ok"),
        ("eu", "replicate", "ok"),
        ("us", "external", "ok"),
    ]
    status = json.loads(lorareg("regions", "status", "--ref", "acme/voice:1", "--json").stdout)
    assert status["version"]["complete_in"] == ["primary"]
    human = lorareg("regions", "status", "--ref", "acme/voice:1").stdout
    assert "acme/voice:1: complete in primary" in human and "eu misses " in human

    r = lorareg("policy", "set", "acme", "--require-regions", "eu,mars")
    assert r.exit_code == 1 and "no region 'mars'; regions: primary, eu, us" in r.stderr
    assert lorareg("policy", "set", "acme", "--require-regions", "eu").exit_code == 0
    r = lorareg("promote", "acme/voice:1", "--to", "production")
    assert r.exit_code == 1 and "region eu does not hold" in r.stderr

    replicate(region_runtime, region_buckets)
    assert lorareg("promote", "acme/voice:1", "--to", "production").exit_code == 0
    r = lorareg("fsck", "--regions")
    assert r.exit_code == 0, r.output
    assert "copy(ies) read and verified" in r.stdout and r.stdout.rstrip().endswith("ok")
    sha = next(iter(region_buckets.keys("eu")))
    region_buckets.clients["eu"].put_object(
        Bucket=region_buckets.buckets["eu"], Key=region_buckets.key_of(sha), Body=b"rot"
    )
    r = lorareg("fsck", "--regions", "--json")
    assert r.exit_code == 1
    problems = json.loads(r.stdout)["regions"]["problems"]
    assert [(p["region"], p["sha256"], p["problem"]) for p in problems] == [
        ("eu", sha, "wrong size")
    ]

    r = lorareg("delete", "acme/voice", "--reason", "offboarding", "--force")
    assert r.exit_code == 0 and "regional cop(ies) deleted" in r.stdout
    assert region_buckets.keys("eu") == set() and region_buckets.keys("us") == set()
