"""The domain error hierarchy. Services raise these; only api/ and cli/ translate them.

    LoraregError                      code            HTTP  exit
    ├── InvalidInput                  invalid_input    422   1
    │   ├── InvalidRequest            invalid_request  422   1   (malformed request; NUL byte: 400)
    │   ├── InvalidName               invalid_name     422   1
    │   ├── InvalidReference          invalid_reference 422  1
    │   ├── InvalidAdapter            invalid_adapter  422   1
    │   │   └── UnsafeFormat          unsafe_format    422   1
    │   ├── UnsafePath                unsafe_path      422   1
    │   │   └── DuplicatePath         duplicate_path   422   1   (same name once case-folded)
    │   ├── WebhookTargetRefused      webhook_target_refused 422 1 (internal address)
    │   ├── InvalidBaseModel          invalid_base_model 422 1   (no safetensors, header over cap)
    │   ├── UnknownEngine             unknown_engine   422   1
    │   ├── DifferentBases            different_bases  422   1   (library: adapters on other bases)
    │   ├── WeightCountMismatch       weight_count_mismatch 422 1 (library: --weights vs refs)
    │   ├── InvalidRank               invalid_rank     422   1   (library: rank <= 0 or too high)
    │   ├── InvalidEnergy             invalid_energy   422   1   (library: outside (0, 1])
    │   ├── UnsupportedAdapter        unsupported_adapter 422 1  (library: not a plain LoRA)
    │   ├── ShapeMismatch             shape_mismatch   422   1   (library: one module, two shapes)
    │   ├── LinearUndefined           linear_undefined 422   1   (library: linear needs equal ranks)
    │   ├── InvalidSplit              invalid_split    422   1   (experiment shares must add to 100)
    │   ├── InvalidSubject            invalid_subject  422   1   (empty, > 256 bytes, control chars)
    │   ├── UnknownVariant            unknown_variant  422   1
    │   ├── VariantBaseMismatch       variant_base_mismatch 422 1 (variants on different bases)
    │   ├── UnknownRegion             unknown_region   422   1   (lists the configured regions)
    │   ├── NegativeCount             negative_count   422   1
    │   └── SuccessesOverTrials       successes_over_trials 422 1
    ├── NotFound                      not_found        404   1
    │   ├── AdapterNotFound           adapter_not_found 404  1
    │   ├── VersionNotFound           version_not_found 404  1
    │   ├── BlobNotFound              blob_not_found   404   1
    │   ├── BaseModelNotFound         base_model_not_found 404 1
    │   ├── BaseSourceNotFound        base_source_not_found 404 1 (folder, s3:// or hf:// missing)
    │   └── ExperimentNotFound        experiment_not_found 404 1
    ├── Conflict                      conflict         409   1
    │   ├── AlreadyExists             already_exists   409   1
    │   ├── GateFailed                gate_failed      409   1   (promotion policy unmet)
    │   ├── InProduction              in_production    409   1   (erasing production: --force)
    │   ├── ExperimentExists          experiment_exists 409  1   (a running one has that name)
    │   ├── ExperimentConcluded       experiment_concluded 409 1 (outcomes/ramps after the end)
    │   └── ExperimentRunning         experiment_running 409 1  (promoting a variant)
    ├── ChecksumMismatch              integrity_error  409   1   (stored bytes != sha256)
    ├── RangeNotSatisfiable           range_not_satisfiable 416 1
    ├── PayloadTooLarge               payload_too_large 413  1   (JSON body over the edge's limit)
    ├── MethodNotAllowed              method_not_allowed 405 1
    ├── HttpError                     http_error       400   1   (any other HTTP-level refusal)
    ├── Unauthorized                  unauthorized     401   1
    ├── Forbidden                     forbidden        403   1
    │   ├── SourceNotAllowed          source_not_allowed 403 1   (server folder/bucket)
    │   └── CrossSiteRequest          cross_site_request 403 1   (foreign Origin on a write)
    ├── HostNotAllowed                host_not_allowed 421   1   (open server, non-loopback Host)
    ├── QuotaExceeded                 quota_exceeded   403   1   (a namespace's bytes or versions)
    ├── TooManyUploads                too_many_uploads 429   1   (presigned uploads over the cap)
    ├── InternalError                 internal         500   1   (a bug: logged, never a traceback)
    └── Unavailable                   unavailable      503   1   (database or storage down)
        ├── StorageUnavailable        storage_unavailable 503 1
        ├── DatabaseUnavailable       database_unavailable 503 1
        └── TooManyWaits              too_many_waits   429   1   (long polls over the cap)

Every class has a stable ``code`` (sent on the wire as ``{"error": {"code", "message"}}``
and as ``X-Error-Code``), an HTTP status and a CLI exit status. ``tests/test_errors.py``
checks that every subclass declares its own code and that every code the API can send has
a class here (the Hugging Face routes speak the Hub's codes instead: ``api/hf_errors.py``).
"""

from __future__ import annotations

from typing import Any, ClassVar


class LoraregError(Exception):
    code: ClassVar[str] = "error"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


class InvalidInput(LoraregError):
    code = "invalid_input"
    http_status = 422


class InvalidName(InvalidInput):
    code = "invalid_name"


class InvalidReference(InvalidInput):
    code = "invalid_reference"


class InvalidAdapter(InvalidInput):
    code = "invalid_adapter"


class UnsafeFormat(InvalidAdapter):
    code = "unsafe_format"


class UnsafePath(InvalidInput):
    code = "unsafe_path"


class NotFound(LoraregError):
    code = "not_found"
    http_status = 404


class AdapterNotFound(NotFound):
    code = "adapter_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class BlobNotFound(NotFound):
    code = "blob_not_found"


class BaseModelNotFound(NotFound):
    code = "base_model_not_found"


class Conflict(LoraregError):
    code = "conflict"
    http_status = 409


class AlreadyExists(Conflict):
    code = "already_exists"


class ChecksumMismatch(LoraregError):
    """Bytes that do not hash to (or are not as long as) what they claim; nothing is kept.

    Named for what it means, not ``IntegrityError``, which is SQLAlchemy's constraint error."""

    code = "integrity_error"
    http_status = 409


class RangeNotSatisfiable(LoraregError):
    code = "range_not_satisfiable"
    http_status = 416


class Unauthorized(LoraregError):
    code = "unauthorized"
    http_status = 401


class Forbidden(LoraregError):
    code = "forbidden"
    http_status = 403


class CrossSiteRequest(Forbidden):
    """A write sent by a page of another site (Origin / Sec-Fetch-Site): never acted on."""

    code = "cross_site_request"


class HostNotAllowed(LoraregError):
    """An open server answers only to loopback names: anything else may be DNS rebinding."""

    code = "host_not_allowed"
    http_status = 421


class Unavailable(LoraregError):
    code = "unavailable"
    http_status = 503


class StorageUnavailable(Unavailable):
    code = "storage_unavailable"


class DatabaseUnavailable(Unavailable):
    code = "database_unavailable"


class TooManyWaits(Unavailable):
    """More concurrent long polls than a caller may hold; retry after ``retry_after_s``."""

    code = "too_many_waits"
    http_status = 429

    def __init__(self, message: str, *, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InvalidRequest(InvalidInput):
    """An HTTP request the API cannot parse: a body or parameter of the wrong shape."""

    code = "invalid_request"


class PayloadTooLarge(LoraregError):
    """A request body over the edge's limit, refused before it is read."""

    code = "payload_too_large"
    http_status = 413


class MethodNotAllowed(LoraregError):
    code = "method_not_allowed"
    http_status = 405


class HttpError(LoraregError):
    """Any other refusal at the HTTP layer (the framework's own ``HTTPException``)."""

    code = "http_error"
    http_status = 400


class InternalError(LoraregError):
    """A bug: the server logs it and answers 500 with this code, never a traceback."""

    code = "internal"
    http_status = 500


def all_error_classes() -> list[type[LoraregError]]:
    """Every class in the hierarchy, root first (used by the wire-mapping tests)."""
    out: list[type[LoraregError]] = []
    stack: list[type[LoraregError]] = [LoraregError]
    while stack:
        cls = stack.pop(0)
        out.append(cls)
        stack.extend(cls.__subclasses__())
    return out


_BY_CODE: dict[str, type[LoraregError]] = {}


def error_for_code(code: str) -> type[LoraregError]:
    """The class for a wire code; the remote client re-raises server errors with it."""
    if not _BY_CODE:
        _BY_CODE.update({c.code: c for c in all_error_classes()})
    return _BY_CODE.get(code, LoraregError)


class InvalidBaseModel(InvalidInput):
    """A base model source that holds no usable safetensors (or a hostile header)."""

    code = "invalid_base_model"


class UnknownEngine(InvalidInput):
    """A serving engine name lorareg has no profile for."""

    code = "unknown_engine"


# The adapter library's refusals (registry/library/): each raised before any tensor is read.
class DifferentBases(InvalidInput):
    code = "different_bases"


class WeightCountMismatch(InvalidInput):
    code = "weight_count_mismatch"


class InvalidRank(InvalidInput):
    code = "invalid_rank"


class InvalidEnergy(InvalidInput):
    code = "invalid_energy"


class UnsupportedAdapter(InvalidInput):
    code = "unsupported_adapter"


class ShapeMismatch(InvalidInput):
    code = "shape_mismatch"


class LinearUndefined(InvalidInput):
    code = "linear_undefined"


class BaseSourceNotFound(NotFound):
    """A base model source (folder, s3:// prefix, hf:// repo or revision) that does not exist."""

    code = "base_source_not_found"


class GateFailed(Conflict):
    """A promotion refused by its policy; ``details["unmet"]`` lists every unmet condition."""

    code = "gate_failed"


class DuplicatePath(UnsafePath):
    """Two file names of one adapter that are the same file once case and Unicode are folded."""

    code = "duplicate_path"


class WebhookTargetRefused(InvalidInput):
    """A webhook URL whose host is (or resolves to) an internal or metadata address."""

    code = "webhook_target_refused"


class SourceNotAllowed(Forbidden):
    """A server-side base model source (folder, bucket) outside the configured roots."""

    code = "source_not_allowed"


class QuotaExceeded(LoraregError):
    """A push that would take its namespace past a quota an admin set. 403, not 413: the
    request itself is small and well-formed; the namespace's policy refuses to hold more."""

    code = "quota_exceeded"
    http_status = 403


class TooManyUploads(LoraregError):
    """A namespace holds more open presigned uploads than ``LORAREG_MAX_OPEN_UPLOADS``."""

    code = "too_many_uploads"
    http_status = 429


class InProduction(Conflict):
    """An erasure that would remove a version serving in production, without ``force``."""

    code = "in_production"


class InvalidSplit(InvalidInput):
    """An experiment split that is not one share per variant adding up to exactly 100 %."""

    code = "invalid_split"


class InvalidSubject(InvalidInput):
    """A subject id that is empty, over 256 bytes or holds control characters."""

    code = "invalid_subject"


class UnknownVariant(InvalidInput):
    """A variant name the experiment does not have."""

    code = "unknown_variant"


class VariantBaseMismatch(InvalidInput):
    """Experiment variants trained on different base models (or on none)."""

    code = "variant_base_mismatch"


class UnknownRegion(InvalidInput):
    """A request named a region the server does not have; the message lists those it has."""

    code = "unknown_region"


class NegativeCount(InvalidInput):
    """An experiment outcome with a negative count."""

    code = "negative_count"


class SuccessesOverTrials(InvalidInput):
    """An experiment outcome with more successes than trials."""

    code = "successes_over_trials"


class ExperimentNotFound(NotFound):
    code = "experiment_not_found"


class ExperimentExists(Conflict):
    """A running experiment of that adapter already has the name."""

    code = "experiment_exists"


class ExperimentConcluded(Conflict):
    """A change (outcomes, ramp, conclusion) to an experiment that has ended."""

    code = "experiment_concluded"


class ExperimentRunning(Conflict):
    """A promotion of a version that is a variant of a running experiment, without
    ``end_experiment``; ``details["experiments"]`` names them."""

    code = "experiment_running"
