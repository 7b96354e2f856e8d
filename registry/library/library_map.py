"""Interference across a library: which adapters of a base fight each other.

The adapters are named refs, or every adapter on a base (its newest LoRA version), narrowed by
namespace and tags, and always by the caller's namespace scope. Pair results are cached by
content id (``interference_pairs``), so a new version costs only its own pairs; the cache
holds numbers about content the caller can already read, never names.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from registry.catalog.interference_pairs import pair_key, read_pairs, store_pairs
from registry.catalog.queries import to_info
from registry.catalog.refs import check_base_name, check_name
from registry.catalog.uploads import Visible
from registry.db import models as m
from registry.domain import VersionInfo
from registry.library.errors import DifferentBases
from registry.library.interference import ModuleOverlap, PairModules, PairSummary, pairwise
from registry.library.results import LibraryMap, PairResult
from registry.library.versions import MAX_INPUTS, opened, resolve_versions
from registry.runtime import Runtime

TOP_MODULES = 3


def library_versions(
    rt: Runtime,
    *,
    base: str,
    namespace: str | None = None,
    tags: dict[str, str] | None = None,
    visible: Visible = None,
) -> list[VersionInfo]:
    """The newest LoRA version of every adapter on ``base`` that the caller may see."""
    check_base_name(base)
    if namespace is not None:
        check_name(namespace, what="namespace")
    q = (
        select(m.AdapterVersion)
        .join(m.Adapter)
        .join(m.Namespace)
        .where(
            m.AdapterVersion.base_model == base,
            m.AdapterVersion.kind == "adapter",
            m.AdapterVersion.peft_type == "LORA",
        )
        .order_by(m.Namespace.name, m.Adapter.name, m.AdapterVersion.number.desc())
    )
    if namespace is not None:
        q = q.where(m.Namespace.name == namespace)
    if visible is not None:
        q = q.where(m.Namespace.name.in_(sorted(visible)))
    newest: dict[int, m.AdapterVersion] = {}
    with rt.db.read() as s:
        for row in s.scalars(q):
            newest.setdefault(row.adapter_id, row)
        infos = [to_info(s, row) for row in newest.values()]
    wanted = tags or {}
    infos = [v for v in infos if all(v.tags.get(k) == val for k, val in wanted.items())]
    return infos[:MAX_INPUTS]


def library_map(
    rt: Runtime,
    *,
    refs: Sequence[str] = (),
    base: str | None = None,
    namespace: str | None = None,
    tags: dict[str, str] | None = None,
    visible: Visible = None,
) -> LibraryMap:
    """Every pair of the selected adapters, with cached pairs read and new ones computed."""
    if refs:
        versions = resolve_versions(rt, list(refs))
        if base is not None and versions and versions[0].base_model != base:
            raise DifferentBases(
                f"{versions[0].ref} was trained on {versions[0].base_model or '(no base)'}, not"
                f" {base}; name adapters of one base"
            )
    else:
        if base is None:
            from registry.errors import InvalidInput

            raise InvalidInput("name the adapters (REF ...) or a base (--base NAME)")
        versions = library_versions(rt, base=base, namespace=namespace, tags=tags, visible=visible)
    n = len(versions)
    keys = {(i, j): _key(versions[i], versions[j]) for i in range(n) for j in range(i + 1, n)}
    cached = read_pairs(rt.db, set(keys.values()))
    missing = [p for p, k in keys.items() if k not in cached]
    computed: dict[tuple[int, int], PairModules] = {}
    if missing:
        involved = sorted({k for p in missing for k in p})
        with opened(rt, [versions[k] for k in involved]) as sources:
            local = {k: pos for pos, k in enumerate(involved)}
            found = pairwise(sources, [(local[i], local[j]) for i, j in missing])
        computed = {(involved[a], involved[b]): mods for (a, b), mods in found.items()}
        store_pairs(rt.db, cache_docs([v.content_id for v in versions], computed))
    pairs = []
    for p, key in keys.items():
        mods = computed[p] if p in computed else _from_cache(versions, p, cached[key])
        pairs.append(_result(versions, p, mods))
    return LibraryMap(
        base_model=versions[0].base_model if versions else base,
        adapters=[v.ref for v in versions],
        pairs=pairs,
        computed_pairs=len(computed),
        cached_pairs=len(keys) - len(computed),
    )


def _key(x: VersionInfo, y: VersionInfo) -> tuple[str, str]:
    return (min(x.content_id, y.content_id), max(x.content_id, y.content_id))


def _swapped(versions: list[VersionInfo], pair: tuple[int, int]) -> bool:
    return versions[pair[0]].content_id > versions[pair[1]].content_id


def cache_docs(
    content_ids: Sequence[str], computed: dict[tuple[int, int], PairModules]
) -> dict[tuple[str, str], dict[str, list[float]]]:
    """Computed pairs (positions into ``content_ids``) as cache documents: keyed by
    ``pair_key``, x the smaller content id."""
    out = {}
    for (i, j), mods in computed.items():
        flip = content_ids[i] > content_ids[j]
        out[pair_key(content_ids[i], content_ids[j])] = {
            k: (v.swapped() if flip else v).to_list() for k, v in mods.items()
        }
    return out


def _from_cache(
    versions: list[VersionInfo], pair: tuple[int, int], doc: dict[str, list[float]]
) -> PairModules:
    flip = _swapped(versions, pair)
    mods = {k: ModuleOverlap(*v) for k, v in doc.items()}
    return {k: v.swapped() for k, v in mods.items()} if flip else mods


def _result(versions: list[VersionInfo], pair: tuple[int, int], mods: PairModules) -> PairResult:
    s = PairSummary.of(mods)
    top = sorted(mods.items(), key=lambda kv: -abs(kv[1].cosine))[:TOP_MODULES]
    return PairResult(
        x=versions[pair[0]].ref,
        y=versions[pair[1]].ref,
        top=[
            {"module": k, "cosine": v.cosine, "overlap_x": v.overlap_x, "overlap_y": v.overlap_y}
            for k, v in top
        ],
        **s.__dict__,
    )
