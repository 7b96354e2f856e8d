"""huggingface_hub's errors as lorareg's, for every call to a hub (a base model's source,
an adapter import): each names the repository and the hub and says what to do next."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from registry.errors import Forbidden, LoraregError, NotFound, Unauthorized, Unavailable


@contextmanager
def hub_errors(
    where: str,
    *,
    doing: str,
    token_hint: str,
    not_found: type[LoraregError] = NotFound,
    missing_file: type[LoraregError] = NotFound,
) -> Iterator[None]:
    """Translate what the block raises. ``where``: the source and hub; ``doing``: what was
    being done ("list the repository"); ``token_hint``: how to hand a token to this
    command; ``not_found``/``missing_file``: the errors for a missing repository or
    revision, and for a missing file."""
    from huggingface_hub.errors import (  # imported on use: most commands never call a hub
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    # huggingface_hub's HTTP errors derive from its HTTP library's base error (httpx2 today,
    # requests before 1.0); connection failures raise that base without a status.
    transport: tuple[type[BaseException], ...] = (OSError, HfHubHTTPError.__mro__[1])
    try:
        yield
    except LoraregError:
        raise
    except GatedRepoError:
        raise Forbidden(f"{where} is gated; accept its terms on the hub and {token_hint}") from None
    except RepositoryNotFoundError:
        raise not_found(f"{where}: no such repository (or it is private: {token_hint})") from None
    except RevisionNotFoundError:
        raise not_found(
            f"{where}: no such revision; use a branch, tag or commit that exists"
        ) from None
    except EntryNotFoundError as exc:
        raise missing_file(f"{where}: could not {doing}: {exc}") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            raise Unauthorized(f"{where}: the hub refused the token ({doing})") from None
        if status == 403:
            raise Forbidden(f"{where}: access denied ({doing})") from None
        raise Unavailable(f"{where}: could not {doing}: {exc}") from None
    except transport as exc:
        raise Unavailable(
            f"{where}: could not {doing}: {exc}; check HF_ENDPOINT and the network"
        ) from None
