"""Names and references: ``acme/voice``, ``acme/voice:3``, ``acme/voice@production``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from registry.errors import InvalidName, InvalidReference

MAX_VERSION = 2**31 - 1  # version numbers are 32-bit integers in the catalog
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
LABEL_RE = re.compile(r"^[a-z][a-z0-9._-]{0,63}$")
CONTENT_ID_RE = re.compile(r"^[0-9a-f]{40}$")
# Hugging Face repo ids: "org/name" or "name", letters, digits, - _ .
BASE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")


def check_name(value: str, *, what: str = "name") -> str:
    if not NAME_RE.match(value or "") or ".." in value:
        raise InvalidName(
            f"invalid {what} {value!r}: use 1-64 lowercase letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return value


def check_base_name(value: str) -> str:
    if not BASE_NAME_RE.match(value or "") or ".." in value:
        raise InvalidName(
            f"invalid base model name {value!r}: use a Hugging Face repo id such as"
            " 'meta-llama/Llama-3.1-8B' or 'tiny-llama'"
        )
    return value


@dataclass(frozen=True)
class Repo:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Ref:
    """A reference to one version: the newest (no selector), a number, or a label."""

    repo: Repo
    number: int | None = None
    label: str | None = None

    def __str__(self) -> str:
        if self.number is not None:
            return f"{self.repo}:{self.number}"
        if self.label is not None:
            return f"{self.repo}@{self.label}"
        return str(self.repo)


def parse_repo(text: str) -> Repo:
    parts = (text or "").split("/")
    if len(parts) != 2:
        raise InvalidReference(
            f"invalid repository {text!r}: write it as NAMESPACE/NAME, e.g. acme/brand-voice"
        )
    return Repo(check_name(parts[0], what="namespace"), check_name(parts[1], what="adapter name"))


def parse_ref(text: str) -> Ref:
    """Parse ``ns/name``, ``ns/name:N`` or ``ns/name@label``."""
    text = text or ""
    if "@" in text:
        repo_text, label = text.split("@", 1)
        return Ref(parse_repo(repo_text), label=parse_selector_label(label, text))
    if ":" in text:
        repo_text, num = text.split(":", 1)
        if not (num.isascii() and num.isdigit()) or not 1 <= int(num) <= MAX_VERSION:
            raise InvalidReference(
                f"invalid reference {text!r}: the part after ':' must be a version number ≥ 1"
            )
        return Ref(parse_repo(repo_text), number=int(num))
    return Ref(parse_repo(text))


def parse_selector_label(label: str, text: str) -> str:
    if not LABEL_RE.match(label):
        raise InvalidReference(
            f"invalid reference {text!r}: a label after '@' is a stage or alias such as"
            " 'production' or 'champion'"
        )
    return label


def parse_revision(rev: str) -> tuple[str, int | str | None]:
    """A revision string as servers send it: ``latest``/``main``, ``N``/``vN``, a 40-hex
    content id, or a label. Returns (kind, value) with kind in latest|number|content|label."""
    if rev in ("", "latest", "main", "head"):
        return ("latest", None)
    digits = rev[1:] if rev.startswith("v") else rev
    if digits.isascii() and digits.isdigit() and 1 <= int(digits) <= MAX_VERSION:
        return ("number", int(digits))
    if CONTENT_ID_RE.match(rev):
        return ("content", rev)
    if LABEL_RE.match(rev):
        return ("label", rev)
    raise InvalidReference(
        f"invalid revision {rev!r}: use 'main', a version number (3 or v3), a 40-hex content id,"
        " or a stage/alias name"
    )
