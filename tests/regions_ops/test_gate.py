"""The promotion gate on regions (``--require-regions``): a version missing from a
required region is refused with the regions and files it misses; the dashboard's preview
says the same; once replicated it goes through. Unknown regions are refused when set."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.catalog.queries import ref_row
from registry.catalog.refs import parse_ref
from registry.client.local import LocalClient
from registry.errors import GateFailed, InvalidInput
from registry.lifecycle.stages import plan_promotion
from registry.runtime import Runtime
from tests.regions_ops.conftest import RegionBuckets, replicate


def test_promotion_waits_for_required_regions(
    region_runtime: Runtime, region_buckets: RegionBuckets, adapter_library: dict[str, Path]
) -> None:
    c = LocalClient(region_runtime)
    files = c.push(adapter_library["v1"], "acme/voice", base="tiny-llama").version.files
    doc = c.set_policy("acme", {"require_regions": ["eu", "us", "primary"]})
    assert doc["rules"]["require_regions"] == ["eu", "us"]  # the primary holds everything
    with pytest.raises(GateFailed) as refused:
        c.promote("acme/voice:1", to="production")
    unmet = refused.value.details["unmet"]
    assert len(unmet) == 2
    assert unmet[0].startswith(f"region eu does not hold {len(files)} file(s) of acme/voice:1")
    assert "adapter_model.safetensors" in unmet[0] and unmet[1].startswith("region us ")
    with region_runtime.db.read() as s:  # the dashboard's preview: the same function
        plan = plan_promotion(
            s, ref_row(s, parse_ref("acme/voice:1")), to="production", reason=None
        )
        assert plan.unmet == unmet
    assert c.promote("acme/voice:1", to="staging")["version"]["stage"] == "staging"  # not gated

    replicate(region_runtime, region_buckets)
    done = c.promote("acme/voice:1", to="production")
    assert done["version"]["stage"] == "production"


def test_policy_names_only_configured_regions(region_runtime: Runtime) -> None:
    c = LocalClient(region_runtime)
    with pytest.raises(InvalidInput, match="no region 'mars'; regions: primary, eu, us"):
        c.set_policy("acme", {"require_regions": ["mars"]})
    with pytest.raises(InvalidInput, match="not a region name"):
        c.set_policy("acme", {"require_regions": ["EU!"]})
