"""Running A/B experiments on a synced node: every variant's folder, linked and described.

One paged call per pass (``GET /api/v1/experiments?base=...``) lists every running
experiment of the synced base the token may see, with each variant's version and content
id; only a variant whose version folder is not on the node yet costs a ``resolve`` and its
downloads (from the node's blob cache where it can). Each variant gets a link
``DIR/ns/name@experiment/variant`` to its content-addressed version folder, flipped
atomically like a stage link, and the manifest gets the experiment's salt and bucket
ranges, so a router assigns a subject (see ``registry.experiments.assignment``) and opens
the variant's folder with no network call. When an experiment ends its links go; the
folders are retired like a replaced stage version (kept ``grace_s`` for readers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry.catalog.refs import Repo
from registry.errors import LoraregError, NotFound, Unauthorized
from registry.experiments.domain import ServedExperiment
from registry.observability import metrics
from registry.sync.layout import flip_link
from registry.sync.materialise import build_version
from registry.sync.state import ExperimentOnDisk, VariantOnDisk, now

if TYPE_CHECKING:
    from registry.sync.node import NodeSync

# Event kinds that change what a node serves for an experiment (``recorded`` does not).
CHANGES = ("experiment.created", "experiment.ramped", "experiment.concluded", "experiment.ended")


def key_of(e: ServedExperiment | ExperimentOnDisk) -> str:
    return f"{e.namespace}/{e.adapter}@{e.name}"


def sync_experiments(node: NodeSync) -> list[str]:
    """Bring the node's experiment folders in line; returns the experiments that failed
    (already logged). Transient errors propagate, like ``NodeSync.apply``."""
    opts = node.options
    try:
        listed = node.source.experiments(opts.namespace, opts.base)
    except NotFound:
        # A registry from before experiments has no such route: serve the stages alone.
        if not node.state.experiments:
            return []
        listed = []
    wanted = {
        key_of(e): e
        for e in listed
        if (not opts.namespace or e.namespace == opts.namespace) and e.base_model == opts.base
    }
    failed: list[str] = []
    for key, exp in sorted(wanted.items()):
        try:
            _place(node, key, exp)
        except LoraregError as exc:
            from registry.sync.node import transient

            if transient(exc) or isinstance(exc, Unauthorized):
                raise  # the caller retries the lot
            node.log(f"{key}: not synced: {exc.message}")
            metrics.SYNC_FAILURES.inc()
            failed.append(key)
    on_disk = {f"{r}@{x}": (r, x) for r, x, _ in node.layout.experiment_dirs()}
    over = sorted((set(node.state.experiments) | set(on_disk)) - set(wanted))
    gone: list[tuple[str, tuple[Repo, str]]] = []
    for key in over:
        entry = node.state.experiments.pop(key, None)
        where = on_disk.get(key) or (
            (Repo(entry.namespace, entry.adapter), entry.name) if entry is not None else None
        )
        if where is not None:
            gone.append((key, where))
        node._save()
    # The manifest stops naming an experiment before its links go: a router that read it
    # never opens a link that is missing (the folders stay for the grace period anyway).
    node.flush()
    for key, where in gone:
        _drop(node, key, *where)
    node.flush()
    return failed


def _place(node: NodeSync, key: str, exp: ServedExperiment) -> None:
    repo = Repo(exp.namespace, exp.adapter)
    layout = node.layout
    current = node.state.experiments.get(key)
    variants: dict[str, VariantOnDisk] = {}
    changed: list[str] = []
    for v in exp.variants:
        link = layout.variant_link(repo, exp.name, v.name)
        if v.version is None or v.content_id is None:  # erased: nothing to serve
            if link.is_symlink():
                link.unlink()
            variants[v.name] = VariantOnDisk(
                version=None, content_id=None, folder=None, control=v.control
            )
            continue
        folder = layout.version_folder(repo, v.version, v.content_id)
        if not folder.is_dir():
            target = node.source.resolve(repo, ref=str(v.version), base=None)
            if target is None or target.content_id != v.content_id:
                raise NotFound(f"variant {v.name} (v{v.version}) is no longer in the registry")
            built = build_version(
                layout, node.blobs, node.source, target, model_name=node.model_name
            )
            node.budget.used += built.fetched
            metrics.SYNC_FETCHED_BYTES.inc(built.fetched)
            folder = built.folder
        on_link = (link.parent / link.readlink()).resolve() if link.is_symlink() else None
        if on_link != folder:
            flip_link(link, folder)
            changed.append(f"{v.name} v{v.version}")
        node._unretire(folder)
        variants[v.name] = VariantOnDisk(
            version=v.version,
            content_id=v.content_id,
            folder=layout.relative(folder),
            control=v.control,
        )
    layout.remove_experiment(repo, exp.name, keep=set(variants))
    entry = ExperimentOnDisk(
        id=exp.id,
        namespace=exp.namespace,
        adapter=exp.adapter,
        name=exp.name,
        base_model=exp.base_model,
        salt=exp.salt,
        period=exp.period,
        ranges=list(exp.ranges),
        variants=variants,
        synced_at=current.synced_at if current is not None else now(),
    )
    same = current is not None and current.model_dump(exclude={"synced_at"}) == entry.model_dump(
        exclude={"synced_at"}
    )
    if same and not changed:
        return
    node.state.experiments[key] = entry.model_copy(update={"synced_at": now()})
    node._save()
    split = ", ".join(f"{v} {e - s}" for s, e, v in exp.ranges)
    what = "; ".join(changed) if changed else "split changed"
    node.log(f"{key}: {what} (buckets: {split}; period {exp.period})")


def _drop(node: NodeSync, key: str, repo: Repo, name: str) -> None:
    """The experiment is over (or no longer visible): remove its links, retire its folders."""
    folder = node.layout.experiment_dir(repo, name)
    targets = [
        (folder / link.readlink()).resolve()
        for link in (folder.iterdir() if folder.is_dir() else ())
        if link.is_symlink()
    ]
    node.layout.remove_experiment(repo, name)
    for target in targets:
        node._retire(target)  # ``collect`` keeps it while a stage link points at it
    node._save()
    node.log(f"{key}: experiment over; its variant links are removed")


def affects(node: NodeSync, kinds_and_repos: list[tuple[str, str | None]]) -> bool:
    """Whether a batch of events (kind, ``ns/name``) may change the node's experiments:
    an ``experiment.*`` change, or any change to an adapter with a running experiment (an
    erased variant version)."""
    with_experiments = {f"{e.namespace}/{e.adapter}" for e in node.state.experiments.values()}
    return any(
        kind in CHANGES or (repo is not None and repo in with_experiments)
        for kind, repo in kinds_and_repos
    )
