"""An adapter as a set of files: safe scanning of a folder, and validation of its contents.

Validation runs against a mapping of ``path -> AdapterFile`` whose bytes come from anywhere
(a local folder before a push, storage on the server at commit time), so the client and
the server apply exactly the same rules.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from registry.errors import DuplicatePath, InvalidAdapter, UnsafeFormat, UnsafePath
from registry.formats.peft import CONFIG_NAME, WEIGHTS_NAME, PeftConfig, parse_config
from registry.formats.safetensors import (
    DEFAULT_MAX_HEADER_BYTES,
    ReadRange,
    SafetensorsHeader,
    file_reader,
    parse_header,
)

# Formats that unpickle on load: loading one can run arbitrary code.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
MAX_CONFIG_BYTES = 1024 * 1024
MAX_FILES = 1000
MAX_PATH_CHARS = 512
MAX_PATH_DEPTH = 16
MAX_NAME_BYTES = 255
# Control, format (bidi overrides, zero-width), surrogate and line/paragraph separators.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

_LORA_KEY = re.compile(
    r"^(?P<module>.+)\.(?P<kind>lora_A|lora_B|lora_embedding_A|lora_embedding_B)(?:\.weight)?$"
)


@dataclass(frozen=True)
class AdapterFile:
    path: str
    size: int
    read: ReadRange


@dataclass(frozen=True)
class LoraModule:
    """One adapted module: its A/B shapes as stored (PEFT's key with the adapter name removed)."""

    name: str
    a_shape: tuple[int, ...]
    b_shape: tuple[int, ...]
    embedding: bool


@dataclass(frozen=True)
class AdapterContents:
    config: PeftConfig
    header: SafetensorsHeader
    modules: dict[str, LoraModule]


def check_relative_path(path: str) -> str:
    """Accept ``path`` only in canonical form (the one name pull and sync will write).

    Refused: absolute paths, empty, ``.`` or ``..`` components (``./x``, ``a//b``,
    ``a/./b``, ``x/../y``, a trailing ``/``), backslashes, control and invisible format
    characters, components ending in a dot or a space (Windows drops them), names not in
    Unicode NFC, and names too long or too deep. Returns ``path`` unchanged.
    """
    if not path or len(path) > MAX_PATH_CHARS:
        raise UnsafePath(
            f"file name {_shown(path)} is not allowed: names are 1 to {MAX_PATH_CHARS} characters"
        )
    bad_char = next((c for c in path if c == "\\" or _invisible(c)), None)
    if bad_char is not None:
        raise UnsafePath(
            f"file name {_shown(path)} is not allowed: it holds the character"
            f" U+{ord(bad_char):04X}; use '/' between folders and printable characters"
        )
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafePath(
            f"file name {_shown(path)} is not allowed: write a relative path inside the adapter"
            " folder without leading, doubled or trailing '/', '.' or '..'"
        )
    if len(parts) > MAX_PATH_DEPTH:
        raise UnsafePath(
            f"file name {_shown(path)} is not allowed: more than {MAX_PATH_DEPTH} folders deep"
        )
    for part in parts:
        if part[-1] in ". " or part[0] == " " or len(part.encode()) > MAX_NAME_BYTES:
            raise UnsafePath(
                f"file name {_shown(path)} is not allowed: {_shown(part)} starts with a space,"
                f" ends with a dot or a space, or is over {MAX_NAME_BYTES} bytes"
            )
    if unicodedata.normalize("NFC", path) != path:
        raise UnsafePath(
            f"file name {_shown(path)} is not allowed: it is not in Unicode NFC form;"
            " rename the file (macOS writes NFD names for accented letters)"
        )
    return path


def check_file_names(paths: Iterable[str]) -> None:
    """Check every name and refuse two that would be the same file on some disk.

    ``README.md`` and ``readme.md`` are one file on macOS and Windows; a pull there would
    silently keep one of them.
    """
    seen: dict[str, str] = {}
    for path in paths:
        check_relative_path(path)
        key = _fold(path)
        if key in seen:
            first = seen[key]
            same = (
                "listed twice"
                if first == path
                else f"the same file as {_shown(first)} once case is ignored"
            )
            raise DuplicatePath(f"file name {_shown(path)} is {same}; keep one of them")
        seen[key] = path


def _fold(path: str) -> str:
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", path).casefold())


def _invisible(c: str) -> bool:
    return unicodedata.category(c) in _INVISIBLE


def _shown(text: str) -> str:
    """A name as an error shows it: escaped, and cut so an error stays one short line."""
    return repr(text[:80] + ("..." if len(text) > 80 else ""))


def scan_folder(folder: Path) -> dict[str, Path]:
    """List the files of an adapter folder as ``relative posix path -> absolute path``.

    Symlinks are followed only when they stay inside the folder; hidden files (``.git``,
    ``.cache``) are skipped. Raises InvalidAdapter / UnsafePath with a clear message.
    """
    if not folder.exists():
        raise InvalidAdapter(f"{folder}: no such folder")
    if not folder.is_dir():
        raise InvalidAdapter(f"{folder}: not a folder; pass the folder holding {CONFIG_NAME}")
    root = folder.resolve()
    out: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for d in dirnames:
            _check_inside(root, Path(dirpath) / d)
        for fname in sorted(filenames):
            if fname.startswith("."):
                continue
            full = Path(dirpath) / fname
            _check_inside(root, full)
            rel = full.relative_to(root).as_posix()
            out[check_relative_path(rel)] = full.resolve()
            if len(out) > MAX_FILES:
                raise InvalidAdapter(f"{folder}: more than {MAX_FILES} files; is this an adapter?")
    return out


def _check_inside(root: Path, path: Path) -> None:
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(root):
            raise UnsafePath(
                f"{path.relative_to(root)} is a symlink leading out of the adapter folder"
                f" (to {target}); copy the file in instead"
            )


def local_files(folder: Path) -> dict[str, AdapterFile]:
    files = scan_folder(folder)
    return {
        rel: AdapterFile(path=rel, size=p.stat().st_size, read=file_reader(p))
        for rel, p in files.items()
    }


def inspect_adapter(
    files: Mapping[str, AdapterFile], *, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
) -> AdapterContents:
    """Validate an adapter's files and return its parsed config, header and LoRA modules.

    Refuses pickles, a missing config or weights, bad JSON, bad headers, and tensors whose
    shapes disagree with the config's rank (lora_A is r x in, lora_B is out x r).
    """
    check_file_names(files)
    for path in files:
        if path.lower().endswith(PICKLE_SUFFIXES):
            raise UnsafeFormat(
                f"{path}: pickle-based weights are refused because loading them can run"
                " arbitrary code; save the adapter with safetensors"
                " (model.save_pretrained(dir, safe_serialization=True)) and push again"
            )
    if CONFIG_NAME not in files:
        raise InvalidAdapter(
            f"no {CONFIG_NAME} in the adapter folder; save the adapter with PEFT's"
            " save_pretrained, which writes it"
        )
    if WEIGHTS_NAME not in files:
        raise InvalidAdapter(
            f"no {WEIGHTS_NAME} in the adapter folder; save the adapter with safetensors"
        )
    cfg_file = files[CONFIG_NAME]
    if cfg_file.size > MAX_CONFIG_BYTES:
        raise InvalidAdapter(f"{CONFIG_NAME} is {cfg_file.size} bytes; that is not a config")
    config = parse_config(cfg_file.read(0, cfg_file.size))
    if config.peft_type.upper() != "LORA":
        raise InvalidAdapter(
            f"peft_type is {config.peft_type!r}; lorareg stores LoRA adapters (peft_type LORA)"
        )
    weights = files[WEIGHTS_NAME]
    header = parse_header(
        weights.read, weights.size, name=WEIGHTS_NAME, max_header_bytes=max_header_bytes
    )
    modules = lora_modules(header, config)
    return AdapterContents(config=config, header=header, modules=modules)


def lora_modules(header: SafetensorsHeader, config: PeftConfig) -> dict[str, LoraModule]:
    """Pair every lora_A with its lora_B and check both against the effective rank."""
    a_shapes: dict[str, tuple[tuple[int, ...], bool]] = {}
    b_shapes: dict[str, tuple[tuple[int, ...], bool]] = {}
    for key, info in header.tensors.items():
        m = _LORA_KEY.match(key)
        if not m:
            continue
        module, kind = m.group("module"), m.group("kind")
        embedding = kind.startswith("lora_embedding")
        (a_shapes if kind.endswith("A") else b_shapes)[module] = (info.shape, embedding)
    if not a_shapes and not b_shapes:
        raise InvalidAdapter(
            f"{WEIGHTS_NAME} holds no lora_A / lora_B tensors; is this a LoRA adapter?"
        )
    for module in sorted(set(a_shapes) ^ set(b_shapes)):
        missing = "lora_B" if module in a_shapes else "lora_A"
        raise InvalidAdapter(f"{module}: has no {missing}; every lora_A needs its lora_B")
    modules: dict[str, LoraModule] = {}
    for module in sorted(a_shapes):
        (a, emb), (b, _) = a_shapes[module], b_shapes[module]
        rank = config.effective_rank(_peft_module_name(module))
        if len(a) < 2 or len(b) < 2:
            raise InvalidAdapter(f"{module}: lora_A / lora_B must be at least 2-D, got {a}, {b}")
        # Embedding LoRA stores A as (r, vocab) and B as (dim, r), like linear layers.
        a_rank, b_rank = a[0], b[1]
        if a_rank != rank or b_rank != rank:
            raise InvalidAdapter(
                f"{module}: lora_A is {list(a)} and lora_B is {list(b)}, but the config's rank"
                f" for this module is {rank} (lora_A must be r x in, lora_B out x r);"
                " the weights and adapter_config.json disagree"
            )
        modules[module] = LoraModule(name=module, a_shape=a, b_shape=b, embedding=emb)
    return modules


def _peft_module_name(module: str) -> str:
    """Strip PEFT's ``base_model.model.`` save prefix to match rank_pattern keys."""
    prefix = "base_model.model."
    return module[len(prefix) :] if module.startswith(prefix) else module
