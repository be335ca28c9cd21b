"""Garbage collection: remove blobs no manifest references, safely while pushes go on.

Mark: every manifest of every repository (with ``delete_untagged``: only those a tag, an
index or a subject keeps alive, plus any younger than the grace period) marks its config and
layers (foreign ones too: a client may have pushed one). Sweep: every other blob whose mtime
is older than the start of the run minus ``grace_seconds`` is removed.

Why a concurrent push is never broken, with no lock shared between the registry and this
collector (they may be different processes, or replicas on one object store):

* A blob's mtime is its "last referenced" time. A committed upload writes it (and the move
  into place keeps the new file's mtime); a mount and every manifest PUT that references the
  blob renew it (``touch``). So a blob pushed, mounted or referenced during the run, or within
  the grace period before it, is younger than the cutoff and is never a candidate (the cutoff
  is moved back by :data:`CLOCK_SLACK`: file and object-store clocks are coarse, or not ours).
* The sweep's check-and-delete is two-phase. A candidate is first *moved* aside
  (``trash/<alg>-<hex>-<random>``, atomic), then its mtime is read again from the trash: if it
  was touched in between (a manifest PUT that saw it before the move, an upload that committed
  it again) it is moved back; only then is it deleted.
* A manifest PUT touches each blob *before* it checks that the blob is there. Either the check
  ran before the move, and then so did the touch, which the collector sees and undoes the move;
  or it ran after, saw the blob missing and answered ``MANIFEST_BLOB_UNKNOWN`` (the client
  pushes the blob again). That holds while the PUT's touches are younger than the cutoff of
  a collector that missed its manifest; a PUT slower than ``CLOCK_SLACK / 2`` between its
  first touch and its manifest's write therefore touches and checks again once the manifest
  shows, and takes a new manifest back if a blob went. A manifest PUT never succeeds with a
  blob gone. The price: while a
  candidate sits in the trash (two storage calls), a GET of it answers 404.
* A run that dies between the move and the re-check leaves the blob in the trash; the next
  run first moves back every trashed blob younger than its cutoff and deletes the rest.

``delete_untagged`` re-reads the repository's tags before its removals and each manifest's
mtime just before it removes it (a PUT that tags a manifest writes it again, renewing it),
which narrows (but on a store without locks cannot close) the window in which a tag PUT for
that very manifest races the removal; run it when pushes are quiet.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass, field

from loguru import logger

from pydocker_registry.errors import RegistryError
from pydocker_registry.manifests import Manifest, parse_manifest
from pydocker_registry.storage import KeyNotFound, StorageBackend
from pydocker_registry.store import RegistryStore

__all__ = ["CLOCK_SLACK", "UPLOAD_MAX_AGE", "GcReport", "collect_garbage"]

CLOCK_SLACK = 2.0
"""Seconds the cutoff is moved back beyond the grace period: file timestamps come from the
kernel's coarse clock (a jiffy behind ``time.time()``), and an object store's from its own."""

UPLOAD_MAX_AGE = 24 * 3600.0
"""Upload sessions idle longer than this (or than the grace period, if longer) are removed,
and storage temporaries (:meth:`~.storage.StorageBackend.remove_temporaries`) as old."""


@dataclass
class GcReport:
    """What a run removed (or, with ``dry_run``, would remove) and kept. Manifests are
    named ``<repository>@<digest>``."""

    dry_run: bool = False
    removed_blobs: list[str] = field(default_factory=list)
    kept_blobs: list[str] = field(default_factory=list)
    removed_manifests: list[str] = field(default_factory=list)
    kept_manifests: list[str] = field(default_factory=list)
    removed_uploads: list[str] = field(default_factory=list)
    removed_temporaries: list[str] = field(default_factory=list)
    """What writes a kill cut short left behind (storage's own names)."""
    bytes_freed: int = 0


async def collect_garbage(
    storage: StorageBackend,
    *,
    dry_run: bool = False,
    grace_seconds: float = 3600,
    delete_untagged: bool = False,
) -> GcReport:
    """Collect the store's garbage (see the module's docstring for why it is safe to run
    while the registry serves pushes)."""
    store = RegistryStore(storage)
    started = time.time()
    cutoff = started - grace_seconds - CLOCK_SLACK
    report = GcReport(dry_run=dry_run)
    if not dry_run:
        await _recover_trash(store, cutoff)
    marked: set[str] = set()
    repositories = await store.repositories()
    for name in repositories:
        for blob in await _mark_repository(store, name, cutoff, delete_untagged, report):
            marked.add(blob)
    async for digest in store.all_blobs():
        if digest in marked:
            report.kept_blobs.append(digest)
        elif (size := await _sweep(store, digest, cutoff, dry_run)) is not None:
            report.removed_blobs.append(digest)
            report.bytes_freed += size
        else:
            report.kept_blobs.append(digest)
    if not dry_run:
        await _unlink_removed(store, repositories, set(report.removed_blobs))
    idle = started - max(grace_seconds, UPLOAD_MAX_AGE)
    await _remove_stale_uploads(store, idle, report)
    # Not the blobs' cutoff: a put in progress (slow fsync) may be older than a short grace.
    report.removed_temporaries = await storage.remove_temporaries(idle, dry_run=dry_run)
    logger.info(
        "gc{}: removed {} blobs ({} bytes), {} manifests, {} uploads, {} temporaries; "
        "kept {} blobs",
        " (dry run)" if dry_run else "",
        len(report.removed_blobs),
        report.bytes_freed,
        len(report.removed_manifests),
        len(report.removed_uploads),
        len(report.removed_temporaries),
        len(report.kept_blobs),
    )
    return report


async def _parsed(store: RegistryStore, name: str, digest: str) -> Manifest | None:
    stored = await store.get_manifest(name, digest)
    if stored is None:
        return None
    try:
        return parse_manifest(stored[1], stored[0])
    except RegistryError:
        logger.warning("gc: {}@{} is not a valid manifest; keeping it", name, digest)
        return None


_DIGEST = re.compile(rb"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")


async def _digests_in(store: RegistryStore, name: str, digest: str) -> set[str]:
    """Every digest a stored manifest's bytes mention (for one that does not parse)."""
    stored = await store.get_manifest(name, digest)
    return {m.decode() for m in _DIGEST.findall(stored[1])} if stored else set()


async def _mark_repository(
    store: RegistryStore, name: str, cutoff: float, delete_untagged: bool, report: GcReport
) -> set[str]:
    """The blobs the repository's live manifests reference; removes the others' manifests
    when ``delete_untagged``."""
    digests = await store.manifests(name)
    parsed = {d: await _parsed(store, name, d) for d in digests}
    live = set(digests)
    if delete_untagged:
        live = await _roots(store, name, digests, cutoff)
        live |= {d for d, m in parsed.items() if m is None}  # unreadable: keep
        grew = True
        while grew:  # children of live indexes and referrers of live manifests live too
            before = len(live)
            for digest, manifest in parsed.items():
                if manifest is None:
                    continue
                if digest in live:
                    live.update(c.digest for c in manifest.children)
                if manifest.subject is not None and manifest.subject.digest in live:
                    live.add(digest)
            grew = len(live) > before
    blobs: set[str] = set()
    # Tags read again just before the removals (once: per manifest it was O(manifests x tags)).
    tagged = await _tagged(store, name) if live != set(digests) else set()
    for digest in digests:
        manifest = parsed[digest]
        if digest not in live and not await _remove_manifest(
            store, name, digest, manifest, tagged, cutoff=cutoff, dry_run=report.dry_run
        ):
            live.add(digest)  # tagged or pushed again meanwhile
        target = report.kept_manifests if digest in live else report.removed_manifests
        target.append(f"{name}@{digest}")
        if digest in live and manifest is not None:
            blobs.update(b.digest for b in manifest.references)
        elif digest in live:  # kept unreadable: so is every blob it may name
            blobs.update(await _digests_in(store, name, digest))
    return blobs


async def _tagged(store: RegistryStore, name: str) -> set[str]:
    """The digests the repository's tags point at."""
    found = set()
    for tag in await store.tags(name) or []:
        if (target := await store.resolve_tag(name, tag)) is not None:
            found.add(target)
    return found


async def _roots(store: RegistryStore, name: str, digests: list[str], cutoff: float) -> set[str]:
    roots = await _tagged(store, name)
    for digest in digests:
        info = await store.manifest_info(name, digest)
        if info is not None and info.mtime > cutoff:
            roots.add(digest)
    return roots


async def _remove_manifest(
    store: RegistryStore,
    name: str,
    digest: str,
    manifest: Manifest | None,
    tagged: set[str],
    *,
    cutoff: float,
    dry_run: bool,
) -> bool:
    """Remove an untagged manifest unless it was tagged or pushed again since the mark
    (every PUT that tags a manifest writes it again, which renews its mtime)."""
    info = await store.manifest_info(name, digest)
    if info is None or info.mtime > cutoff:
        return info is None
    if digest in tagged:
        return False
    if not dry_run:
        await store.delete_manifest(name, digest, manifest, untag=False)
    return True


def _trash_key(digest: str) -> str:
    return f"trash/{digest.replace(':', '-')}-{secrets.token_hex(6)}"


async def _sweep(store: RegistryStore, digest: str, cutoff: float, dry_run: bool) -> int | None:
    """Remove one unmarked blob unless it is young or touched while set aside; returns its
    size when removed."""
    storage, key = store.storage, store.blob_key(digest)
    info = await storage.stat(key)
    if info is None or info.mtime > cutoff:
        return None
    if dry_run:
        return info.size
    trash = _trash_key(digest)
    try:
        await storage.move(key, trash)
    except KeyNotFound:
        return None
    after = await storage.stat(trash)
    if after is None:
        return None
    if after.mtime > cutoff or after.mtime != info.mtime:  # touched since the stat
        await storage.move(trash, key)
        return None
    await storage.delete(trash)
    return after.size


async def _recover_trash(store: RegistryStore, cutoff: float) -> None:
    """Finish the sweeps of a run that died: blobs touched since go back, the rest go."""
    for entry in await store.storage.children("trash"):
        key = f"trash/{entry}"
        alg, _, rest = entry.partition("-")
        digest = f"{alg}:{rest.rpartition('-')[0]}"
        info = await store.storage.stat(key)
        if info is not None and info.mtime > cutoff:
            logger.info("gc: restoring {} from an earlier run's trash", digest)
            await store.storage.move(key, store.blob_key(digest))
        else:
            await store.storage.delete(key)


async def _unlink_removed(store: RegistryStore, repositories: list[str], removed: set[str]) -> None:
    """Drop the repositories' links to removed blobs (unless one was pushed again)."""
    for name in repositories:
        for digest in await store.linked_blobs(name):
            if digest in removed and await store.storage.stat(store.blob_key(digest)) is None:
                await store.unlink_blob(name, digest)


async def _remove_stale_uploads(store: RegistryStore, before: float, report: GcReport) -> None:
    for upload_id in await store.storage.children("uploads"):
        started: float | None
        try:
            info = json.loads(await store.storage.get(f"uploads/{upload_id}/info"))
            started = float(info["started"])
        except KeyNotFound:  # maybe being created: judge by its data alone
            started = None
        except (ValueError, KeyError, TypeError):
            started = 0.0
        data = await store.storage.stat(f"uploads/{upload_id}/data")
        if started is None and data is None:
            continue
        last = max(started or 0.0, data.mtime if data else 0.0)
        if last < before:
            report.removed_uploads.append(upload_id)
            if not report.dry_run:
                await store.storage.delete(f"uploads/{upload_id}")
