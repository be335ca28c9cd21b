"""The image service: what the Engine API's image endpoints do.

Layers are unpacked once per chain ID by the storage driver, blobs are stored once by
digest, and metadata changes are single transactions (see :mod:`.store`). The order of
every operation that adds an image is: blobs into the content store, then layers into the
driver (each recorded when complete), then one transaction adding the image and its tags.
A crash at any point leaves at most unreferenced blobs and layers, which
:meth:`ImageService.collect_garbage` removes at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import secrets
import shutil
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, TypeVar

from loguru import logger

from pydockerd import sysinfo
from pydockerd.archive import decompressed
from pydockerd.containers.model import now_rfc3339
from pydockerd.distribution import MEDIA_TYPES
from pydockerd.errors import Conflict, InvalidParameter, NotFound, SystemError
from pydockerd.images.changes import apply_changes
from pydockerd.images.content import ContentStore, HashingReader, sha256_digest
from pydockerd.images.reference import (
    Reference,
    looks_like_id,
    parse_reference,
)
from pydockerd.images.store import ImageRecord, ImageStore, LayerRecord, chain_ids
from pydockerd.plugin import StorageDriver

__all__ = ["ImageService", "LoadedImage", "short_id"]

OCI_MANIFEST = MEDIA_TYPES.OCI_MANIFEST
OCI_CONFIG = MEDIA_TYPES.OCI_CONFIG
OCI_LAYER = MEDIA_TYPES.OCI_LAYER
OCI_INDEX = MEDIA_TYPES.OCI_INDEX

Emit = Callable[..., object]
"""``emit(type, action, actor_id, **attributes)``: the daemon's event publisher."""
T = TypeVar("T")

LayerProgress = Callable[[str, str], None]
"""``on_layer(blob digest, status)``: hears each layer being unpacked."""


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


@dataclass
class LoadedImage:
    """One image found in an archive, its blobs already in the content store."""

    config_digest: str
    layer_blobs: list[str]
    repo_tags: list[str] = field(default_factory=list)
    manifest: str | None = None


_SavePlan = tuple[str, list[Reference], list[LayerRecord]]
"""What ``save`` writes of one image: its ID, the references to name it by, its layers."""


def _familiar(ref: str) -> str:
    return parse_reference(ref, default_tag=False).familiar()


class ImageService:
    """Images of one daemon, kept under ``root`` (``<data-root>/image``)."""

    def __init__(self, root: Path, driver: StorageDriver, emit: Emit) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.content = ContentStore(root / "content")
        self.store = ImageStore(root / "images.db")
        self.driver = driver
        self.emit = emit
        self.tmp = root / "tmp"
        self.lock = asyncio.Lock()
        """Held by every change of images and tags that spans several steps."""
        self.container_users: Callable[[str], list[tuple[str, bool]]] = lambda image_id: []
        """``image ID -> [(container ID, running), ...]``; set by the container service."""
        self.layers_in_use_by_containers: Callable[[], set[str]] = set
        """Storage-driver layer IDs containers own; set by the container service."""
        self.chains_in_use_by_containers: Callable[[], set[str]] = set
        """Chain IDs of the image layers containers stand on (kept even when their image is
        deleted); set by the container service."""

    def close(self) -> None:
        self.store.close()

    # -- start-up -------------------------------------------------------------------------

    async def collect_garbage(self) -> None:
        """Remove what no image references: what a crash or an interrupted operation left."""
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(mode=0o700)
        self.content.clean_ingest()
        for dropped in self.content.clean_partials():
            logger.info("dropped the stale partial download of {}", dropped)
        await self.remove_unused_layers()
        layers = self.store.layers()
        known = {layer.cache_id for layer in layers} | self.layers_in_use_by_containers()
        for cache_id in self.driver.layer_ids():
            if cache_id not in known:
                logger.info("removing storage layer {} that no image or container uses", cache_id)
                await self.driver.remove(cache_id)
        self._collect_blobs()

    async def remove_unused_layers(self, candidates: set[str] | None = None) -> None:
        """Remove the layers (of ``candidates``, chain IDs; all when None) that no image or
        container stands on, top-down: a layer goes only once nothing stands on it."""
        used = self.store.layers_in_use() | self.chains_in_use_by_containers()
        layers = self.store.layers()
        parents = {layer.parent for layer in layers}
        removed = True
        while removed:
            removed = False
            for layer in list(layers):
                if candidates is not None and layer.chain_id not in candidates:
                    continue
                if layer.chain_id not in used and layer.chain_id not in parents:
                    logger.info("removing unreferenced layer {}", layer.chain_id)
                    await self.driver.remove(layer.cache_id)
                    self.store.delete_layer(layer.chain_id)
                    layers.remove(layer)
                    parents = {x.parent for x in layers}
                    removed = True

    def _collect_blobs(self) -> None:
        referenced: set[str] = set()
        for image in self.store.images():
            referenced.add(image.id)
            if image.manifest:
                referenced.add(image.manifest)
        referenced.update(layer.blob for layer in self.store.layers() if layer.blob)
        referenced |= self.content.held()  # a pull's blobs, not recorded yet
        for digest in self.content.digests():
            if digest not in referenced:
                self.content.delete(digest)

    # -- lookups --------------------------------------------------------------------------

    def resolve(self, name: str) -> ImageRecord:
        """The image ``name`` refers to: a reference, a full ID, or an unambiguous ID prefix.

        :raises NotFound: Docker's ``No such image: <name>``.
        """
        if name.startswith("sha256:") or (len(name) == 64 and looks_like_id(name)):
            found = self.store.image(name if name.startswith("sha256:") else f"sha256:{name}")
            if found is not None:
                return found
        ref: Reference | None = None
        try:
            ref = parse_reference(name)
        except InvalidParameter:
            if not looks_like_id(name):
                raise
        if ref is not None:
            image_id = self.store.lookup(str(ref))
            if image_id is None and ref.digest is not None:
                image_id = self.store.lookup(f"{ref.name}@{ref.digest}")
            if image_id is not None:
                found = self.store.image(image_id)
                if found is not None:
                    return found
        if looks_like_id(name):
            prefix = name if name.startswith("sha256:") else f"sha256:{name}"
            matches = self.store.ids_with_prefix(prefix)
            if len(matches) == 1:
                found = self.store.image(matches[0])
                if found is not None:
                    return found
            if len(matches) > 1:
                raise InvalidParameter(f"ambiguous image ID prefix {name!r}")
        shown = ref.familiar() if ref is not None and not looks_like_id(name) else name
        raise NotFound(f"No such image: {shown}")

    def config(self, image_id: str) -> dict[str, Any]:
        config: dict[str, Any] = json.loads(self.content.read(image_id))
        return config

    def layers_of(self, image: ImageRecord) -> list[LayerRecord]:
        return self.store.layer_chain(image.top_layer)

    def tags_of(self, image_id: str) -> list[str]:
        return [_familiar(r) for r in self.store.refs_of(image_id, "tag")]

    def digests_of(self, image_id: str) -> list[str]:
        return [_familiar(r) for r in self.store.refs_of(image_id, "digest")]

    # -- adding images --------------------------------------------------------------------

    async def ensure_layers(
        self, diff_ids: list[str], blobs: list[str], on_layer: LayerProgress | None = None
    ) -> LayerRecord | None:
        """Every layer of a stack in the driver (unpacked once per chain ID); the top one.
        The caller holds :attr:`lock`."""
        top: LayerRecord | None = None
        for chain_id, diff_id, blob in zip(chain_ids(diff_ids), diff_ids, blobs, strict=True):
            existing = self.store.layer(chain_id)
            if existing is not None:
                top = existing
                continue
            if on_layer is not None:
                on_layer(blob, "Extracting")
            cache_id = secrets.token_hex(32)
            try:
                # the driver works in threads: a cancellation (a pull abandoned) waits for
                # them, so that the layer removed below is not made again under it
                await _uncancelled_until_done(
                    self.driver.create(cache_id, top.cache_id if top else None)
                )
                size, actual = await _uncancelled_until_done(self._apply_blob(cache_id, blob))
                if actual != diff_id:
                    raise InvalidParameter(
                        f"layer {blob} does not match the image config: its content is "
                        f"{actual}, the config says {diff_id}"
                    )
                record = LayerRecord(
                    chain_id, diff_id, top.chain_id if top else None, cache_id, size, blob
                )
                self.store.add_layer(record)
            except BaseException:
                await self.driver.remove(cache_id)
                raise
            top = record
            if on_layer is not None:
                on_layer(blob, "Pull complete")
        return top

    async def _apply_blob(self, cache_id: str, blob: str) -> tuple[int, str]:
        """Unpack the layer tar ``blob`` into ``cache_id``: (content bytes, diff ID)."""
        with self.content.open(blob) as raw:
            reader = HashingReader(decompressed(raw))
            size = await self.driver.apply_diff(cache_id, reader)  # type: ignore[arg-type]
            await asyncio.to_thread(reader.drain)
        return size, reader.digest

    async def add_image(
        self,
        config_digest: str,
        layer_blobs: list[str],
        *,
        refs: Sequence[Reference] = (),
        manifest: str | None = None,
        parent: str | None = None,
        on_layer: LayerProgress | None = None,
    ) -> tuple[str, list[tuple[Reference, str]]]:
        """Record an image whose config and layer blobs are in the content store.

        ``on_layer(blob, status)`` hears ``Extracting`` and ``Pull complete`` for each layer
        unpacked (layers already there are not).

        :returns: the image ID, and each ref that moved away from another image (ref, old ID).
        """
        try:
            config = self.config(config_digest)
            diff_ids = list(config["rootfs"]["diff_ids"])
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidParameter(f"invalid image config {config_digest}: {e}") from None
        if len(diff_ids) != len(layer_blobs):
            raise InvalidParameter(
                f"image {config_digest} has {len(layer_blobs)} layers, its config {len(diff_ids)}"
            )
        top = await self.ensure_layers(diff_ids, layer_blobs, on_layer)
        size = sum(layer.size for layer in self.store.layer_chain(top.chain_id if top else None))
        moved: list[tuple[Reference, str]] = []
        existing = self.store.image(config_digest)
        with self.store.transaction() as db:
            self.store.add_image(
                db,
                ImageRecord(
                    config_digest,
                    top.chain_id if top else None,
                    parent if parent else (existing.parent if existing else None),
                    manifest or (existing.manifest if existing else None),
                    size,
                    existing.added if existing else time.time(),
                    now_rfc3339() if refs else (existing.last_tag_time if existing else None),
                ),
            )
            for ref in refs:
                previous = self.store.lookup(str(ref))
                if previous is not None and previous != config_digest:
                    moved.append((ref, previous))
                kind = "digest" if ref.digest and not ref.tag else "tag"
                self.store.set_ref(db, str(ref), config_digest, kind)
        return config_digest, moved

    async def load(self, archive: Path) -> list[str]:
        """Load every image of a ``docker save`` archive (Docker or OCI layout); the lines
        ``docker load`` prints."""
        async with self.lock:
            found = await asyncio.to_thread(self._read_archive, archive)
            lines: list[str] = []
            for image in found:
                refs = [parse_reference(tag) for tag in image.repo_tags]
                image_id, moved = await self.add_image(
                    image.config_digest, image.layer_blobs, refs=refs, manifest=image.manifest
                )
                for ref, old in moved:
                    lines.append(
                        f"The image {ref.familiar()} already exists, renaming the old one with "
                        f"ID {old} to empty string"
                    )
                for ref in refs:
                    lines.append(f"Loaded image: {ref.familiar()}")
                    self.emit("image", "tag", image_id, name=ref.familiar())
                if not refs:
                    lines.append(f"Loaded image ID: {image_id}")
                self.emit("image", "load", image_id, name=image_id)
            return lines

    def _read_archive(self, archive: Path) -> list[LoadedImage]:
        try:
            with tarfile.open(archive, "r:*") as tar:
                names = set(tar.getnames())
                if "manifest.json" in names:
                    return self._read_docker_manifest(tar)
                if "index.json" in names:
                    return self._read_oci_index(tar)
        except tarfile.TarError as e:
            raise InvalidParameter(f"invalid archive: {e}") from None
        raise InvalidParameter("invalid archive: it has neither manifest.json nor index.json")

    def _member_json(self, tar: tarfile.TarFile, name: str) -> Any:
        try:
            return json.loads(self._member(tar, name).read())
        except ValueError as e:
            raise InvalidParameter(f"invalid archive: {name} is not JSON: {e}") from None

    @staticmethod
    def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
        clean = str(PurePosixPath(name))
        try:
            file = tar.extractfile(clean)
        except KeyError:
            file = None
        if file is None:
            raise InvalidParameter(f"invalid archive: {name} is missing")
        return file

    def _store_member(self, tar: tarfile.TarFile, name: str) -> str:
        with self.content.ingest() as writer:
            writer.copy_from(self._member(tar, name))
            expected = None
            parts = PurePosixPath(name).parts
            if len(parts) == 3 and parts[:2] == ("blobs", "sha256"):
                expected = f"sha256:{parts[2]}"
            return writer.commit(expected)

    def _read_docker_manifest(self, tar: tarfile.TarFile) -> list[LoadedImage]:
        manifest = self._member_json(tar, "manifest.json")
        if not isinstance(manifest, list):
            raise InvalidParameter("invalid archive: manifest.json is not a list")
        images = []
        for entry in manifest:
            try:
                config_name, layer_names = entry["Config"], entry["Layers"]
            except (KeyError, TypeError):
                raise InvalidParameter(
                    "invalid archive: manifest.json entry lacks Config or Layers"
                ) from None
            config_digest = self._store_member(tar, config_name)
            blobs = [self._store_member(tar, name) for name in layer_names]
            tags = [str(t) for t in entry.get("RepoTags") or []]
            images.append(LoadedImage(config_digest, blobs, tags))
        return images

    def _read_oci_index(self, tar: tarfile.TarFile) -> list[LoadedImage]:
        index = self._member_json(tar, "index.json")
        images = []
        for descriptor in index.get("manifests") or []:
            digest = descriptor.get("digest", "")
            manifest_name = "blobs/" + digest.replace(":", "/", 1)
            manifest_digest = self._store_member(tar, manifest_name)
            manifest = json.loads(self.content.read(manifest_digest))
            if manifest.get("mediaType") == OCI_INDEX or "manifests" in manifest:
                continue  # nested indexes (multi-platform) are not supported here
            config = manifest["config"]["digest"]
            config_digest = self._store_member(tar, "blobs/" + config.replace(":", "/", 1))
            blobs = [
                self._store_member(tar, "blobs/" + layer["digest"].replace(":", "/", 1))
                for layer in manifest.get("layers") or []
            ]
            annotations = descriptor.get("annotations") or {}
            name = annotations.get("io.containerd.image.name")
            tags = [name] if name else []
            images.append(LoadedImage(config_digest, blobs, tags, manifest_digest))
        return images

    async def import_rootfs(
        self,
        stream: IO[bytes],
        *,
        ref: Reference | None,
        changes: list[str],
        message: str,
        source: str = "-",
    ) -> str:
        """A one-layer image from a root filesystem tar (``docker import``); its ID."""
        async with self.lock:
            with self.content.ingest() as writer:
                await asyncio.to_thread(writer.copy_from, stream)
                blob = writer.commit()
            diff_id = await asyncio.to_thread(self._diff_id_of, blob)
            created = now_rfc3339()
            config = {
                "architecture": sysinfo.go_arch(),
                "os": "linux",
                "created": created,
                "config": apply_changes({}, changes),
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [
                    {
                        "created": created,
                        "created_by": "",
                        "comment": message or f"Imported from {source}",
                    }
                ],
            }
            if message:
                config["comment"] = message
            config_digest = self.content.write(json.dumps(config).encode())
            image_id, _ = await self.add_image(config_digest, [blob], refs=[ref] if ref else [])
            self.emit("image", "import", image_id, name=ref.familiar() if ref else image_id)
            return image_id

    def _diff_id_of(self, blob: str) -> str:
        with self.content.open(blob) as raw:
            reader = HashingReader(decompressed(raw))
            reader.drain()
        return reader.digest

    # -- tags -----------------------------------------------------------------------------

    def tag(self, image: ImageRecord, ref: Reference) -> None:
        with self.store.transaction() as db:
            self.store.set_ref(db, str(ref), image.id, "tag")
            self.store.touch_tag_time(db, image.id, now_rfc3339())
        self.emit("image", "tag", image.id, name=ref.familiar())

    # -- removal --------------------------------------------------------------------------

    async def delete(self, name: str, *, force: bool, prune: bool) -> list[dict[str, str]]:
        """``docker rmi``: untag, and delete the image when nothing refers to it any more."""
        async with self.lock:
            image = self.resolve(name)
            by_reference = not _is_id_form(name, image.id)
            records: list[dict[str, str]] = []
            refs = self.store.refs_of(image.id)
            if by_reference and (ref := self._matching_ref(name, refs)) is not None:
                going = [ref, *self._digests_going_with(ref, refs)]
                if len(refs) > len(going):
                    for each in going:
                        self._untag(each, image.id, records)
                    return records
                if not force:
                    self._check_containers(image, f'repository reference "{name}"', force=False)
                for each in going:
                    self._untag(each, image.id, records)
                if self.store.children(image.id):
                    return records
            else:
                repos = {parse_reference(r, default_tag=False).name for r in refs}
                if len(repos) > 1 and not force:
                    raise Conflict(
                        f"conflict: unable to delete {short_id(image.id)} (must be forced) - "
                        "image is referenced in multiple repositories"
                    )
                if self.store.children(image.id):
                    raise Conflict(
                        f"conflict: unable to delete {short_id(image.id)} (cannot be forced) - "
                        "image has dependent child images"
                    )
                self._check_containers(image, short_id(image.id), force=force)
                for ref in refs:
                    self._untag(ref, image.id, records)
            await self._remove_image(image, records)
            if prune and image.parent:
                parent = self.store.image(image.parent)
                if (
                    parent
                    and not self.store.refs_of(parent.id)
                    and not self.store.children(parent.id)
                ):
                    await self._remove_image(parent, records)
            return records

    def _check_containers(self, image: ImageRecord, what: str, *, force: bool) -> None:
        for container_id, running in self.container_users(image.id):
            if running:
                raise Conflict(
                    f"conflict: unable to delete {short_id(image.id)} (cannot be forced) - "
                    f"image is being used by running container {container_id[:12]}"
                )
            if not force:
                raise Conflict(
                    f"conflict: unable to remove {what} (must force) - container "
                    f"{container_id[:12]} is using its referenced image {short_id(image.id)}"
                )

    @staticmethod
    def _matching_ref(name: str, refs: list[str]) -> str | None:
        ref = parse_reference(name)
        for candidate in (str(ref), f"{ref.name}@{ref.digest}" if ref.digest else ""):
            if candidate in refs:
                return candidate
        return None

    @staticmethod
    def _digests_going_with(ref: str, refs: list[str]) -> list[str]:
        """The digest references that go when tag ``ref`` does: those of its repository,
        when no other tag of that repository is left (moby's rule, so that ``rmi`` of a
        pulled image's last tag deletes it)."""
        if "@" in ref:
            return []
        repository = parse_reference(ref).name
        same_repository = [
            other for other in refs if other != ref and parse_reference(other).name == repository
        ]
        if any("@" not in other for other in same_repository):
            return []
        return same_repository

    def _untag(self, ref: str, image_id: str, records: list[dict[str, str]]) -> None:
        with self.store.transaction() as db:
            self.store.delete_ref(db, ref)
        familiar = _familiar(ref)
        records.append({"Untagged": familiar})
        self.emit("image", "untag", image_id, name=familiar)

    async def _remove_image(self, image: ImageRecord, records: list[dict[str, str]]) -> None:
        chain = self.store.layer_chain(image.top_layer)
        with self.store.transaction() as db:
            self.store.delete_image(db, image.id)
        records.append({"Deleted": image.id})
        self.emit("image", "delete", image.id, name=image.id)
        used = self.store.layers_in_use() | self.chains_in_use_by_containers()
        for layer in reversed(chain):
            if layer.chain_id in used:
                break
            await self.driver.remove(layer.cache_id)
            self.store.delete_layer(layer.chain_id)
            records.append({"Deleted": layer.chain_id})
        self._collect_blobs()

    async def prune(
        self, *, dangling_only: bool, keep: Callable[[ImageRecord], bool]
    ) -> dict[str, Any]:
        """``docker image prune``: unused images (only untagged ones when ``dangling_only``)."""
        deleted: list[dict[str, str]] = []
        reclaimed = 0
        changed = True
        while changed:  # removing a child can make its parent prunable
            changed = False
            for image in self.store.images():
                refs = self.store.refs_of(image.id)
                if dangling_only and refs:
                    continue
                if keep(image) or self.container_users(image.id) or self.store.children(image.id):
                    continue
                before = self._layer_bytes()
                async with self.lock:
                    for ref in refs:
                        self._untag(ref, image.id, deleted)
                    await self._remove_image(image, deleted)
                reclaimed += before - self._layer_bytes()
                changed = True
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    async def remove_unused(self, candidates: set[str]) -> int:
        """Delete those of ``candidates`` that nothing needs (no tag, no container, no child
        image; removing a child can free its parent); the layer bytes freed."""
        before = self._layer_bytes()
        changed = True
        while changed:
            changed = False
            for image_id in sorted(candidates):
                image = self.store.image(image_id)
                if image is None:
                    candidates.discard(image_id)
                    continue
                if (
                    self.store.refs_of(image_id)
                    or self.container_users(image_id)
                    or self.store.children(image_id)
                ):
                    continue
                async with self.lock:
                    await self._remove_image(image, [])
                candidates.discard(image_id)
                changed = True
        return before - self._layer_bytes()

    def _layer_bytes(self) -> int:
        return sum(layer.size for layer in self.store.layers())

    # -- save -----------------------------------------------------------------------------

    async def save(self, names: list[str]) -> Path:
        """A ``docker save`` archive of ``names`` in a temporary file the caller removes."""
        wanted: dict[str, list[Reference]] = {}
        for name in names:
            image = self.resolve(name)
            refs = wanted.setdefault(image.id, [])
            if not _is_id_form(name, image.id):
                ref = parse_reference(name)
                if ref.tag and ref not in refs:
                    refs.append(ref)
        plan = [
            (image_id, refs, self.store.layer_chain(self.resolve(image_id).top_layer))
            for image_id, refs in wanted.items()
        ]
        target = await asyncio.to_thread(self._write_archive_file, plan)
        for image_id in wanted:
            self.emit("image", "save", image_id, name=image_id)
        return target

    def _write_archive_file(self, plan: list[_SavePlan]) -> Path:
        fd, path = tempfile.mkstemp(dir=self.tmp, suffix=".tar")
        try:
            with open(fd, "wb") as out:  # noqa: PTH123 - an fd from mkstemp
                self._write_archive(plan, out)
        except BaseException:
            Path(path).unlink(missing_ok=True)
            raise
        return Path(path)

    def _write_archive(self, plan: list[_SavePlan], out: IO[bytes]) -> None:
        """Runs in a thread: reads the content store only, never the database."""
        written: set[str] = set()
        index: list[dict[str, Any]] = []
        manifest: list[dict[str, Any]] = []
        repositories: dict[str, dict[str, str]] = {}
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:

            def add_blob(digest: str, data: IO[bytes], size: int) -> str:
                name = "blobs/" + digest.replace(":", "/", 1)
                if digest not in written:
                    info = tarfile.TarInfo(name)
                    info.size, info.mode, info.mtime = size, 0o444, 0
                    tar.addfile(info, data)
                    written.add(digest)
                return name

            for directory in ("blobs", "blobs/sha256"):
                info = tarfile.TarInfo(directory)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            for image_id, refs, chain in plan:
                config_bytes = self.content.read(image_id)
                with self.content.open(image_id) as f:
                    config_name = add_blob(image_id, f, len(config_bytes))
                layer_names, descriptors = [], []
                for layer in chain:
                    with self._uncompressed_layer(layer) as (data, size):
                        layer_names.append(add_blob(layer.diff_id, data, size))
                    descriptors.append(
                        {"mediaType": OCI_LAYER, "digest": layer.diff_id, "size": size}
                    )
                oci_manifest = json.dumps(
                    {
                        "schemaVersion": 2,
                        "mediaType": OCI_MANIFEST,
                        "config": {
                            "mediaType": OCI_CONFIG,
                            "digest": image_id,
                            "size": len(config_bytes),
                        },
                        "layers": descriptors,
                    },
                    separators=(",", ":"),
                ).encode()
                manifest_digest = sha256_digest(oci_manifest)
                add_blob(manifest_digest, io.BytesIO(oci_manifest), len(oci_manifest))
                base = {
                    "mediaType": OCI_MANIFEST,
                    "digest": manifest_digest,
                    "size": len(oci_manifest),
                }
                for ref in refs:
                    annotations = {
                        "io.containerd.image.name": str(ref),
                        "org.opencontainers.image.ref.name": ref.tag or "",
                    }
                    index.append({**base, "annotations": annotations})
                    if layer_names and ref.tag:
                        top = layer_names[-1].rsplit("/", 1)[-1]
                        repositories.setdefault(ref.familiar_name, {})[ref.tag] = top
                if not refs:
                    index.append(base)
                manifest.append(
                    {
                        "Config": config_name,
                        "RepoTags": [ref.familiar() for ref in refs] or None,
                        "Layers": layer_names,
                    }
                )
            files = {
                "index.json": {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index},
                "manifest.json": manifest,
                "oci-layout": {"imageLayoutVersion": "1.0.0"},
            }
            if repositories:
                files["repositories"] = repositories
            for name, value in files.items():
                text = json.dumps(value, separators=(",", ":")).encode()
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(text), 0o644
                tar.addfile(info, io.BytesIO(text))

    @contextmanager
    def _uncompressed_layer(self, layer: LayerRecord) -> Iterator[tuple[IO[bytes], int]]:
        """A layer's tar, uncompressed, and its size: the blob itself when it is a plain tar
        (its digest is then the diff ID), else a temporary decompressed copy."""
        if layer.blob is None:
            raise SystemError(f"layer {layer.chain_id} has no stored tar; cannot export it")
        if layer.blob == layer.diff_id:
            with self.content.open(layer.blob) as plain:
                yield plain, self.content.size(layer.blob)
            return
        with tempfile.TemporaryFile(dir=self.tmp) as copy:
            with self.content.open(layer.blob) as source:
                shutil.copyfileobj(decompressed(source), copy, 1 << 20)
            size = copy.tell()
            copy.seek(0)
            yield copy, size


async def _uncancelled_until_done(work: Awaitable[T]) -> T:
    """Await ``work``; when the caller is cancelled, let ``work`` finish first, then pass
    the cancellation on."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await task
        raise


def _is_id_form(name: str, image_id: str) -> bool:
    """Whether ``name`` named the image by (a prefix of) its ID rather than a reference."""
    bare = name.removeprefix("sha256:")
    return looks_like_id(name) and image_id.removeprefix("sha256:").startswith(bare)
