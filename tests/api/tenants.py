"""Two tenants in one catalog, for the tenancy tests: ``acme`` (the victim, with a bit of
everything: versions, a stage, an alias, evals, a policy, a token, a webhook, jobs, a merged
model) and ``beta`` (the caller, with tokens of every role scoped to it).

Everything of acme's is named so it can be searched for in a response: the namespace
itself and the adapter ``secret-sauce``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from registry.access import ROLES, create_token
from registry.client.local import LocalClient
from registry.db import models as m
from registry.domain import EvalRecord
from registry.lifecycle import policies
from registry.merge import job_queue
from registry.runtime import Runtime

ACME_ADAPTER = "secret-sauce"
TINY = "tiny-llama"


@dataclass
class Tenants:
    runtime: Runtime
    acme_version_id: int = 0
    acme_sha256: str = ""
    acme_content_id: str = ""
    acme_token_id: int = 0
    acme_webhook_id: int = 0
    acme_job_id: int = 0
    beta_job_id: int = 0
    mixed_job_id: int = 0  # output in beta, an input in acme
    root: str = ""  # an unscoped admin token
    beta: dict[str, str] = field(default_factory=dict)  # role -> token scoped to beta
    beta_admin_id: int = 0

    @property
    def acme_strings(self) -> tuple[str, ...]:
        """What no answer to a beta token may contain."""
        return ("acme", ACME_ADAPTER, self.acme_sha256, self.acme_content_id)


def _spec(output: str, *inputs: str) -> dict[str, Any]:
    return {
        "inputs": [
            {"ref": f"{r}:1", "repo": r, "number": 1, "content_id": "0" * 40, "weight": 1.0}
            for r in inputs
        ],
        "base": TINY,
        "method": "linear",
        "output": output,
    }


def build_tenants(
    runtime: Runtime, adapter_library: dict[str, Path], base_library: dict[str, Path]
) -> Tenants:
    t = Tenants(runtime)
    local = LocalClient(runtime)
    local.add_base(TINY, str(base_library["tiny"]))
    pushed = local.push(adapter_library["v1"], f"acme/{ACME_ADAPTER}", base=TINY)
    local.push(adapter_library["v2"], "beta/b", base=TINY)
    local.push(adapter_library["r8"], "acme/secret-merged", base=TINY)
    local.promote(f"acme/{ACME_ADAPTER}:1", to="staging")
    local.set_alias(f"acme/{ACME_ADAPTER}", "champion", 1)
    local.add_evals(f"acme/{ACME_ADAPTER}:1", [EvalRecord(metric="acc", value=0.5)])
    policies.set_policy(
        runtime.db, "acme", policies.parse_rules({"require_reason": True}), actor="root"
    )
    t.acme_content_id = pushed.version.content_id
    t.acme_sha256 = next(
        f.sha256 for f in pushed.version.files if f.path == "adapter_model.safetensors"
    )
    t.root = create_token(runtime.db, name="root", role="admin", actor="t")[0]
    t.acme_token_id = create_token(
        runtime.db, name="acme-ops", role="admin", actor="t", namespaces=["acme"]
    )[1].id
    for role in ROLES:
        secret, info = create_token(
            runtime.db, name=f"beta-{role}", role=role, actor="t", namespaces=["beta"]
        )
        t.beta[role] = secret
        if role == "admin":
            t.beta_admin_id = info.id
    with runtime.db.write() as s:
        acme_hook = m.Webhook(
            url="https://93.184.215.14/acme-hook",
            secret="s" * 32,
            namespace="acme",
            created_by="t",
        )
        s.add_all([acme_hook])
        s.flush()
        t.acme_webhook_id = acme_hook.id
        # beta/b:1 went into acme's merged model: beta's page must not name it.
        ids = dict(
            s.execute(
                select(m.Adapter.name, m.AdapterVersion.id).join(
                    m.Adapter, m.Adapter.id == m.AdapterVersion.adapter_id
                )
            ).all()
        )
        t.acme_version_id = ids[ACME_ADAPTER]
        s.add(
            m.MergeInput(output_id=ids["secret-merged"], input_id=ids["b"], weight=1.0, position=0)
        )
    t.acme_job_id = job_queue.enqueue(
        runtime.db, _spec(f"acme/{ACME_ADAPTER}-merged", f"acme/{ACME_ADAPTER}"), actor="root"
    ).id
    t.beta_job_id = job_queue.enqueue(runtime.db, _spec("beta/b-merged", "beta/b"), actor="root").id
    t.mixed_job_id = job_queue.enqueue(
        runtime.db, _spec("beta/mixed", "beta/b", f"acme/{ACME_ADAPTER}"), actor="root"
    ).id
    return t
