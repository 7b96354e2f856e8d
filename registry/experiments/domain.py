"""What the experiments service returns: plain pydantic objects for every edge."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from registry.domain import EventInfo


class _Domain(BaseModel):
    model_config = ConfigDict(frozen=True)


class VariantInfo(_Domain):
    name: str
    version: int | None  # None only once an admin erased the version
    ref: str  # what the creator wrote (``@production``, ``3``)
    percent: float
    control: bool = False


class ExperimentInfo(_Domain):
    namespace: str
    adapter: str
    name: str
    state: str  # running, concluded, ended
    base_model: str
    salt: str
    metric: str
    description: str | None
    variants: list[VariantInfo]
    # [[start, end, variant], ...]: the bucket table a router needs to assign offline.
    ranges: list[tuple[int, int, str]]
    period: int
    winner: str | None = None
    created_by: str
    created_at: datetime
    ended_by: str | None = None
    ended_at: datetime | None = None

    @property
    def repo(self) -> str:
        return f"{self.namespace}/{self.adapter}"


class Assignment(_Domain):
    experiment: str
    subject: str
    bucket: int
    variant: str | None  # None once the experiment is over: production answers
    version: int | None
    state: str


class VariantStats(_Domain):
    variant: str
    version: int | None
    control: bool
    kind: str  # rate or mean
    exposures: int  # trials (rates) or observations (means)
    successes: int | None = None
    value: float | None = None  # the rate or the mean
    low: float | None = None  # its 95 % interval
    high: float | None = None
    lift: float | None = None  # against control, absolute
    lift_low: float | None = None
    lift_high: float | None = None
    p_value: float | None = None
    chance_to_beat: float | None = None


class MetricReport(_Domain):
    metric: str
    kind: str
    variants: list[VariantStats]


class SampleRatioCheck(_Domain):
    """Chi-square of this period's exposures (since the last ramp) against the split."""

    period: int
    exposures: dict[str, int]
    expected: dict[str, float]
    chi2: float
    p_value: float
    mismatch: bool


class ExperimentReport(_Domain):
    experiment: ExperimentInfo
    metrics: list[MetricReport] = Field(default_factory=list)
    srm: SampleRatioCheck | None = None
    history: list[EventInfo] = Field(default_factory=list)


class Conclusion(_Domain):
    experiment: ExperimentInfo
    winner: str
    version: int
    promoted: bool  # False: the winner already was production
    archived: int | None  # the production version it replaced


class GatePreview(_Domain):
    """What concluding with ``winner`` would meet: empty ``unmet`` means the gates pass."""

    winner: str
    version: int | None
    unmet: list[str]
    role: str


class ServedVariant(_Domain):
    name: str
    version: int | None  # None only once an admin erased the version
    content_id: str | None
    control: bool = False


class ServedExperiment(_Domain):
    """A running experiment as a serving node needs it: enough to assign subjects and to
    load each variant's version offline (``lorareg sync`` writes it into the manifest)."""

    id: int  # the paging key (``after``)
    namespace: str
    adapter: str
    name: str
    base_model: str
    salt: str
    period: int
    # [[start, end, variant], ...] over buckets 0..9999 (see experiments.assignment).
    ranges: list[tuple[int, int, str]]
    variants: list[ServedVariant]
