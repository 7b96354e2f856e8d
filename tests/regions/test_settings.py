"""Region settings: one clear InvalidInput per bad value, and nothing changes without them."""

from __future__ import annotations

import json

import pytest

from registry.config import load_settings
from registry.errors import InvalidInput, UnknownRegion
from registry.regions import open_regions
from registry.storage.local import LocalBlobStore

EU = {"name": "eu", "storage_url": "s3://eu-bucket/blobs", "endpoint_url": "http://127.0.0.1:9000"}


def regions(*items: dict[str, object]) -> str:
    return json.dumps(list(items))


def test_a_full_configuration_parses() -> None:
    s = load_settings(
        regions=regions(EU, {"name": "ap-1", "storage_url": "file:///srv/ap", "mode": "external",
                             "aws_profile": "ap"}),
        primary_region="us",
        region="ap-1",
        region_fallback="eu, us",
    )  # fmt: skip
    assert s.region_names == ["us", "eu", "ap-1"]
    assert s.replica_regions == ("eu", "ap-1")
    assert s.regions[1].mode == "external" and s.regions[0].mode == "replicate"
    assert s.region_fallback == ["eu", "us"]


def test_without_regions_nothing_changes() -> None:
    s = load_settings()
    assert s.regions == [] and s.replica_regions == () and s.region is None
    rs = open_regions(s, LocalBlobStore(s.home / "blobs"))
    assert not rs.enabled and rs.names == ["primary"] and rs.order_for("primary") == ["primary"]


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"regions": "[{"}, "LORAREG_REGIONS"),
        ({"regions": '{"name": "eu"}'}, "JSON list"),
        ({"regions": regions({**EU, "name": "EU"})}, "not a region name"),
        ({"regions": regions({**EU, "name": "x" * 33})}, "LORAREG_REGIONS_0_NAME"),
        ({"regions": regions(EU, EU)}, "twice"),
        ({"regions": regions({**EU, "storage_url": "http://x/y"})}, "s3://bucket/prefix"),
        ({"regions": regions({**EU, "endpoint_url": "ftp://x"})}, "http://"),
        ({"regions": regions({**EU, "mode": "mirror"})}, "LORAREG_REGIONS_0_MODE"),
        ({"regions": regions({**EU, "colour": "red"})}, "LORAREG_REGIONS_0_COLOUR"),
        ({"regions": regions({**EU, "aws_profile": "a b"})}, "AWS_PROFILE"),
        ({"regions": regions({**EU, "name": "primary"})}, "primary store's name"),
        ({"regions": regions(*({**EU, "name": f"r{i}"} for i in range(33)))}, "at most 32"),
        ({"regions": regions(EU), "region": "mars"}, "LORAREG_REGION='mars' is not a region"),
        ({"regions": regions(EU), "region_fallback": "eu,mars"}, "LORAREG_REGION_FALLBACK"),
        ({"region_fallback": "eu,eu"}, "twice"),
        ({"primary_region": "Main"}, "LORAREG_PRIMARY_REGION"),
    ],
)
def test_bad_settings_are_one_clear_error(overrides: dict[str, object], says: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        load_settings(**overrides)
    assert says in str(exc.value)
    assert "\n" not in str(exc.value)


def test_an_unknown_region_lists_the_regions() -> None:
    s = load_settings(regions=regions(EU))
    rs = open_regions(s, LocalBlobStore(s.home / "blobs"))
    with pytest.raises(UnknownRegion) as exc:
        rs.get("mars")
    assert "primary, eu" in str(exc.value)
    assert rs.order_for("eu") == ["eu", "primary"]
