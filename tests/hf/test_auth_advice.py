"""A Hub client refused for want of a token is told about HF_TOKEN (what huggingface_hub,
PEFT and vLLM read), with a token command that works."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

from registry.domain import VersionInfo
from registry.runtime import Runtime
from registry.server import create_app
from tests.fixtures.catalog import LiveServer
from tests.hf.conftest import REPO


@pytest.mark.parametrize("storage_backend", ["local"])  # no blob is read
def test_hub_401s_name_hf_token(runtime: Runtime, voice: list[VersionInfo], hf_cache: Path) -> None:
    with LiveServer(create_app(runtime, require_auth=True, background=False)) as srv:
        with pytest.raises(HfHubHTTPError) as refused:
            hf_hub_download(REPO, "adapter_config.json", cache_dir=hf_cache, endpoint=srv.url,
                            token=False)  # fmt: skip
        assert refused.value.response.status_code == 401
        shown = str(refused.value)
        assert "set HF_TOKEN to a lorareg token" in shown and "LORAREG_TOKEN" not in shown
        assert "lorareg token create --name NAME --role reader" in shown
        bad = httpx.get(f"{srv.url}/api/models/{REPO}", headers={"Authorization": "Bearer x"})
        assert bad.status_code == 401 and "HF_TOKEN" in bad.json()["error"]
        # The lorareg API keeps speaking to lorareg clients.
        api = httpx.get(f"{srv.url}/api/v1/adapters")
        assert "LORAREG_TOKEN" in api.json()["error"]["message"]
