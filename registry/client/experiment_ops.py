"""A/B experiment operations of both clients (mixins of LocalClient and RemoteClient).

``assign`` answers offline: the client keeps each experiment's definition (salt, bucket
ranges, pinned versions) and buckets subjects itself, exactly as the server does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from registry.catalog.refs import Ref, Repo, parse_ref, parse_repo
from registry.experiments.domain import (
    Assignment,
    Conclusion,
    ExperimentInfo,
    ExperimentReport,
    GatePreview,
    ServedExperiment,
)

if TYPE_CHECKING:
    import httpx

    from registry.experiments.serving import ExperimentDef
    from registry.principal import Principal
    from registry.runtime import Runtime

Variants = Sequence[tuple[str, str]]
Split = str | list[float]


@dataclass(frozen=True)
class NewExperiment:
    """What starting an experiment asks for, normalised once for both clients: the
    experiments service's arguments, and (variants aside) the route's body."""

    name: str
    variants: list[tuple[str, str]]  # (variant, ref), control first
    split: Split
    metric: str
    reason: str | None


class _ExperimentRequests:
    """``experiment_create``'s arguments, read once: each client sends the same
    ``NewExperiment`` its own way (``_create``)."""

    def experiment_create(
        self,
        repo: str,
        name: str,
        *,
        variants: Variants,
        split: str | Sequence[float],
        metric: str,
        reason: str | None = None,
    ) -> ExperimentInfo:
        pairs = [(v, r) for v, r in variants]
        spec = NewExperiment(name, pairs, _split(split), metric, reason)
        return self._create(parse_repo(repo), spec)

    def _create(self, repo: Repo, spec: NewExperiment) -> ExperimentInfo:  # pragma: no cover
        raise NotImplementedError


def _split(split: str | Sequence[float]) -> Split:
    return split if isinstance(split, str) else list(split)


def _service() -> ModuleType:
    """The experiments service, loaded on first use: a `lorareg list` does not pay for it."""
    from registry.experiments import service

    return service


class LocalExperiments(_ExperimentRequests):
    """Mixin for LocalClient: acts as the local admin, like the lifecycle operations."""

    rt: Runtime

    @property
    def principal(self) -> Principal:  # pragma: no cover - LocalLifecycle provides it
        raise NotImplementedError

    def _create(self, repo: Repo, spec: NewExperiment) -> ExperimentInfo:
        return _service().create(self.rt.db, repo, principal=self.principal, **asdict(spec))

    def experiment_list(self, repo: str, *, running: bool = False) -> list[ExperimentInfo]:
        return _service().list_experiments(self.rt.db, parse_repo(repo), running_only=running)

    def experiment_show(self, repo: str, name: str) -> ExperimentReport:
        from registry.experiments.report import report  # scipy: only for the statistics

        return report(self.rt.db, parse_repo(repo), name)

    def experiment_ramp(
        self, repo: str, name: str, *, split: str | Sequence[float], reason: str | None = None
    ) -> ExperimentInfo:
        return _service().ramp(
            self.rt.db, parse_repo(repo), name, split=split, reason=reason, principal=self.principal
        )

    def experiment_record(self, repo: str, name: str, **outcome: Any) -> ExperimentInfo:
        return _service().record(
            self.rt.db, parse_repo(repo), name, principal=self.principal, **outcome
        )

    def experiment_preview(
        self, repo: str, name: str, *, winner: str, reason: str | None = None
    ) -> GatePreview:
        return _service().preview_conclusion(
            self.rt.db,
            parse_repo(repo),
            name,
            winner=winner,
            reason=reason,
            store=self.rt.store,
        )

    def experiment_conclude(
        self, repo: str, name: str, *, winner: str, reason: str | None = None
    ) -> Conclusion:
        return _service().conclude(
            self.rt.db,
            parse_repo(repo),
            name,
            winner=winner,
            reason=reason,
            principal=self.principal,
            store=self.rt.store,
        )

    def experiments_of(self, ref: str) -> list[ExperimentInfo]:
        """Experiments with a variant on the version ``ref`` names, running first."""
        return _service().experiments_using(self.rt.db, parse_ref(ref))

    def assign(self, repo: str, name: str, subject: str) -> Assignment:
        from registry.experiments.serving import assignment_for

        return assignment_for(self.rt.db, parse_repo(repo), name, subject)

    def running_experiments(
        self, *, namespace: str | None = None, base: str | None = None
    ) -> list[ServedExperiment]:
        """Every running experiment (on ``base``, in ``namespace``): what sync serves."""
        from registry.experiments.fleet import MAX_PAGE, running_experiments

        out: list[ServedExperiment] = []
        while page := running_experiments(
            self.rt.db, namespace=namespace, base=base, after=out[-1].id if out else 0
        ):
            out += page
            if len(page) < MAX_PAGE:
                break
        return out


class RemoteExperiments(_ExperimentRequests):
    """Mixin for RemoteClient, over ``/api/v1/adapters/{ns}/{name}/experiments``."""

    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:  # pragma: no cover
        raise NotImplementedError

    def resolve(
        self, repo: str, *, ref: str = "latest", base: str | None = None
    ) -> dict[str, Any]:  # pragma: no cover - RemoteClient provides it
        raise NotImplementedError

    def _experiments(self, repo: str) -> str:
        return f"/api/v1/adapters/{parse_repo(repo)}/experiments"

    def _experiment(self, repo: str, name: str) -> str:
        return f"{self._experiments(repo)}/{quote(name, safe='')}"

    def _create(self, repo: Repo, spec: NewExperiment) -> ExperimentInfo:
        body = {**asdict(spec), "variants": [{"name": v, "ref": r} for v, r in spec.variants]}
        return ExperimentInfo.model_validate(
            self._call("POST", self._experiments(str(repo)), json=body).json()
        )

    def experiment_list(self, repo: str, *, running: bool = False) -> list[ExperimentInfo]:
        resp = self._call("GET", self._experiments(repo), params={"running": running})
        return [ExperimentInfo.model_validate(e) for e in resp.json()]

    def experiment_show(self, repo: str, name: str) -> ExperimentReport:
        return ExperimentReport.model_validate(
            self._call("GET", self._experiment(repo, name)).json()
        )

    def experiment_ramp(
        self, repo: str, name: str, *, split: str | Sequence[float], reason: str | None = None
    ) -> ExperimentInfo:
        body = {"split": _split(split), "reason": reason}
        resp = self._call("POST", f"{self._experiment(repo, name)}/ramp", json=body)
        return ExperimentInfo.model_validate(resp.json())

    def experiment_record(self, repo: str, name: str, **outcome: Any) -> ExperimentInfo:
        resp = self._call("POST", f"{self._experiment(repo, name)}/outcomes", json=outcome)
        return ExperimentInfo.model_validate(resp.json())

    def experiment_preview(
        self, repo: str, name: str, *, winner: str, reason: str | None = None
    ) -> GatePreview:
        params = {"winner": winner, **({"reason": reason} if reason else {})}
        resp = self._call("GET", f"{self._experiment(repo, name)}/preview", params=params)
        return GatePreview.model_validate(resp.json())

    def experiment_conclude(
        self, repo: str, name: str, *, winner: str, reason: str | None = None
    ) -> Conclusion:
        body = {"winner": winner, "reason": reason}
        resp = self._call("POST", f"{self._experiment(repo, name)}/conclude", json=body)
        return Conclusion.model_validate(resp.json())

    def experiments_of(self, ref: str) -> list[ExperimentInfo]:
        r: Ref = parse_ref(ref)
        number = r.number
        if number is None:
            number = int(self.resolve(str(r.repo), ref=r.label or "latest")["version"])
        path = f"/api/v1/adapters/{r.repo}/versions/{number}/experiments"
        return [ExperimentInfo.model_validate(e) for e in self._call("GET", path).json()]

    def running_experiments(
        self, *, namespace: str | None = None, base: str | None = None
    ) -> list[ServedExperiment]:
        """Every running experiment the token may see (on ``base``, in ``namespace``), in
        pages of ``MAX_PAGE``: one call for most nodes."""
        # The fleet module reads the catalog (SQLAlchemy): loaded by sync, not at start-up.
        from registry.experiments.fleet import MAX_PAGE

        out: list[ServedExperiment] = []
        while True:
            params: dict[str, Any] = {"limit": MAX_PAGE, "after": out[-1].id if out else 0}
            if namespace:
                params["namespace"] = namespace
            if base:
                params["base"] = base
            resp = self._call("GET", "/api/v1/experiments", params=params)
            page = [ServedExperiment.model_validate(e) for e in resp.json()]
            out += page
            if len(page) < MAX_PAGE:
                return out

    def assign(self, repo: str, name: str, subject: str) -> Assignment:
        """Offline after the first call per experiment: the definition is fetched once and
        kept (call ``forget_experiments`` after a ramp or conclusion)."""
        cache: dict[tuple[str, str], ExperimentDef] = self.__dict__.setdefault(
            "_experiment_defs", {}
        )
        key = (str(parse_repo(repo)), name)
        definition = cache.get(key)
        if definition is None:
            definition = definition_of(self.experiment_show(repo, name).experiment)
            cache[key] = definition
        bucket, variant, _, base = definition.target(subject)
        if variant is None:
            version = int(self.resolve(repo, ref="production", base=base)["version"])
        else:
            version = definition.versions.get(variant)  # type: ignore[assignment]
        return Assignment(
            experiment=name,
            subject=subject,
            bucket=bucket,
            variant=variant,
            version=version,
            state=definition.state,
        )

    def forget_experiments(self) -> None:
        self.__dict__.pop("_experiment_defs", None)


def definition_of(info: ExperimentInfo) -> ExperimentDef:
    from registry.experiments.assignment import BucketRange
    from registry.experiments.serving import ExperimentDef

    return ExperimentDef(
        name=info.name,
        state=info.state,
        salt=info.salt,
        base_model=info.base_model,
        ranges=tuple(BucketRange(a, b, v) for a, b, v in info.ranges),
        versions={v.name: v.version for v in info.variants},
    )
