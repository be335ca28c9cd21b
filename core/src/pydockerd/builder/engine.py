"""The builder: a Dockerfile and its context to an image, as Docker's legacy builder does.

Every instruction makes an image on top of the one before (an *intermediate* image, shown
by ``docker images -a``): RUN runs its command in a real container and keeps what it
changed as a layer; COPY and ADD place files in a fresh layer; the others change only the
config. Each step's result is remembered in the build cache under a key made of its parent
image, the instruction as it was expanded, the build arguments it sees and, for COPY and
ADD, the content of what it copies; a step whose key is known is not run again.

Output is the legacy builder's: ``Step 2/5 : RUN make``, `` ---> Running in <id>``, the
command's output, `` ---> <image id>``, ``Successfully built``/``Successfully tagged``.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hashlib
import json
import re
import secrets
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from pydockerd.builder import files
from pydockerd.builder.context import read_dockerfile
from pydockerd.builder.dockerfile import (
    DEFAULT_SHELL,
    Dockerfile,
    Heredoc,
    Instruction,
    Stage,
    command_line,
    expand,
    expand_arguments,
    healthcheck,
    key_values,
    parse,
    parse_instruction,
    run_script,
    sources_and_dest,
)
from pydockerd.containers.model import now_rfc3339
from pydockerd.distribution import RegistryCredentials
from pydockerd.errors import InvalidParameter, NotFound, PydockerdError
from pydockerd.fsutil import resolve_in_root
from pydockerd.images.content import ContentStore
from pydockerd.images.reference import Reference, parse_reference
from pydockerd.images.service import ImageService, short_id
from pydockerd.images.store import CacheRecord, ImageRecord
from pydockerd.supervisor.protocol import EXIT_STREAM, read_frame

__all__ = ["PREDEFINED_ARGS", "BuildError", "BuildOptions", "Builder"]

Report = Callable[[dict[str, Any]], None]

PREDEFINED_ARGS = frozenset(
    {
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "FTP_PROXY",
        "ftp_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    }
)
"""Build arguments usable without an ARG (kept out of the image's history, as Docker)."""
_METADATA = frozenset(
    {
        "ENV",
        "ARG",
        "USER",
        "CMD",
        "ENTRYPOINT",
        "EXPOSE",
        "LABEL",
        "VOLUME",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "SHELL",
        "ONBUILD",
        "MAINTAINER",
    }
)
_FETCH_TIMEOUT = 60.0
_URL = re.compile(r"^https?://")


class BuildError(PydockerdError):
    """A step failed; ``code`` is the failed command's exit status (the CLI exits with it)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class BuildOptions:
    """What ``POST /build`` asks for."""

    dockerfile: str = "Dockerfile"
    tags: Sequence[Reference] = ()
    build_args: Mapping[str, str | None] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    pull: bool = False
    quiet: bool = False
    remove: bool = True
    force_remove: bool = False
    network_mode: str = ""
    credentials: Mapping[str, RegistryCredentials] = field(default_factory=dict)


@dataclass
class _Stage:
    """Where one stage stands: its image so far and what is in scope."""

    image_id: str | None
    config: dict[str, Any]
    args: dict[str, str | None] = field(default_factory=dict)
    cmd_set: bool = False

    @property
    def container_config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.config.setdefault("config", {})
        return config

    @property
    def env(self) -> dict[str, str]:
        pairs = (item.partition("=") for item in self.container_config.get("Env") or [])
        return {key: value for key, _, value in pairs}

    @property
    def shell(self) -> list[str]:
        return list(self.container_config.get("Shell") or DEFAULT_SHELL)


class Builder:
    """Builds images for one daemon."""

    def __init__(self, images: ImageService, containers: Any, transfers: Any) -> None:
        self.images = images
        self.containers = containers
        self.transfers = transfers

    # -- the build -------------------------------------------------------------------------

    async def build(self, context: Path, options: BuildOptions, report: Report) -> str:
        """Build from ``context`` (unpacked) and tag the result; its image ID."""
        text = read_dockerfile(context, options.dockerfile)
        dockerfile = parse(text)
        stages = list(dockerfile.stages)
        if options.target:
            stages = stages[: dockerfile.stage(options.target).index + 1]
        run = _Run(self, context, dockerfile, options, report)
        image_id = await run.stages(stages)
        if not options.quiet:
            unused = sorted(set(options.build_args) - run.consumed - PREDEFINED_ARGS)
            if unused:
                report(
                    {
                        "stream": "[Warning] One or more build-args "
                        f"[{' '.join(unused)}] were not consumed\n"
                    }
                )
        async with self.images.lock:
            for ref in options.tags:
                self.images.tag(self.images.store.image(image_id) or _missing(image_id), ref)
        report({"aux": {"ID": image_id}})
        if options.quiet:
            report({"stream": f"{image_id}\n"})
        else:
            report({"stream": f"Successfully built {short_id(image_id)}\n"})
            for ref in options.tags:
                report({"stream": f"Successfully tagged {ref.familiar()}\n"})
        return image_id


def _ignore(message: dict[str, Any]) -> None:
    """A report that shows nothing (``-q``)."""


def _missing(image_id: str) -> ImageRecord:
    raise NotFound(f"No such image: {image_id}")


class _Run:
    """One build in progress."""

    def __init__(
        self,
        builder: Builder,
        context: Path,
        dockerfile: Dockerfile,
        options: BuildOptions,
        report: Report,
    ) -> None:
        self.builder = builder
        self.images = builder.images
        self.context = context
        self.dockerfile = dockerfile
        self.options = options
        self._report = report
        self.escape = dockerfile.escape
        self.consumed: set[str] = set()
        self.finished: dict[str, str | None] = {}
        """Stage name and index → its image ID (None: an empty scratch stage)."""
        self.step = 0
        self.total = 0
        self.meta_args: dict[str, str | None] = {}
        self.last_stage = 0

    def say(self, text: str) -> None:
        if not self.options.quiet:
            self._report({"stream": text})

    # -- stages ----------------------------------------------------------------------------

    async def stages(self, stages: Sequence[Stage]) -> str:
        self.total = sum(1 + len(stage.instructions) for stage in stages)
        self.total += 1 if self.options.labels else 0  # --label is a step of its own
        for instruction in self.dockerfile.meta_args:
            for key, default in key_values(instruction, self._arg_env(), escape=self.escape):
                self.meta_args[key] = self._arg_value(key, default)
        image_id: str | None = None
        self.last_stage = stages[-1].index
        for stage in stages:
            image_id = await self._stage(stage)
            self.finished[str(stage.index)] = image_id
            if stage.name:
                self.finished[stage.name] = image_id
        if image_id is None:  # FROM scratch and nothing else
            image_id = await self._commit_scratch()
        return image_id

    def _arg_env(self) -> dict[str, str]:
        return {k: v for k, v in self.meta_args.items() if v is not None}

    def _arg_value(self, key: str, default: str | None) -> str | None:
        if key in self.options.build_args:
            self.consumed.add(key)
            given = self.options.build_args[key]
            return given if given is not None else default
        return default

    async def _stage(self, stage: Stage) -> str | None:
        self._step(stage.from_instruction.original)
        base = expand(stage.base, self._arg_env(), escape=self.escape)
        state = await self._from(base, stage.platform)
        triggers = list(state.container_config.get("OnBuild") or [])
        if triggers:
            state.container_config["OnBuild"] = None
            self.say(
                f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n"
            )
            for text in triggers:
                # triggers are read with the default escape, whatever this file's is
                trigger = parse_instruction(text, stage.from_instruction.line)
                await self._dispatch(state, trigger)
        if state.image_id is not None:
            self.say(f" ---> {short_id(state.image_id)}\n")
        for instruction in stage.instructions:
            self._step(instruction.original)
            await self._dispatch(state, instruction)
        if self.options.labels and stage.index == self.last_stage:
            await self._labels(state, self.options.labels)
        return state.image_id

    def _step(self, text: str) -> None:
        self.step += 1
        self.say(f"Step {self.step}/{self.total} : {text}\n")

    async def _labels(self, state: _Stage, labels: Mapping[str, str]) -> None:
        """``--label``: a LABEL step after the last stage's, its values taken as given (not
        parsed or expanded, as Docker adds them)."""
        text = "LABEL " + " ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in labels.items())
        self._step(text)
        config = state.container_config
        config["Labels"] = {**(config.get("Labels") or {}), **labels}
        description = f"#(nop)  {text}"
        key = self._cache_key(state, ["LABEL", description])
        if not self._cached(state, key):
            await self._record(state, key, description, None)

    async def _from(self, base: str, platform: str | None) -> _Stage:
        if base.lower() == "scratch":
            config: dict[str, Any] = {
                "architecture": "amd64",
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [],
            }
            return _Stage(None, config)
        if base.lower() in self.finished:  # stage names are not case-sensitive
            image_id = self.finished[base.lower()]
            if image_id is None:
                return await self._from("scratch", platform)
        else:
            image_id = (await self._base_image(base, platform)).id
        config = self.images.config(image_id)  # parsed anew: ours to change
        for stale in ("container", "container_config", "docker_version"):
            config.pop(stale, None)
        return _Stage(image_id, config, {})

    async def _base_image(self, name: str, platform: str | None) -> ImageRecord:
        """The image ``FROM name`` means: local, else pulled (always tried with ``--pull``)."""
        try:
            local: ImageRecord | None = self.images.resolve(name)
        except NotFound:
            local = None
        if local is not None and not self.options.pull:
            return local
        transfers = self.builder.transfers
        if transfers is None:
            if local is not None:
                return local
            raise NotFound(f"pull access denied for {name}: no registry transport")
        ref = parse_reference(name)
        credentials = self.options.credentials.get(ref.domain) or RegistryCredentials()
        try:
            progress = self._report if not self.options.quiet else _ignore
            image_id = await transfers.pull(ref, credentials, progress, platform=platform or "")
        except PydockerdError:
            if local is not None:
                return local
            raise
        record = self.images.store.image(image_id)
        assert record is not None
        return record

    # -- instructions ------------------------------------------------------------------------

    async def _dispatch(self, state: _Stage, instruction: Instruction) -> None:
        keyword = instruction.keyword
        if keyword == "RUN":
            await self._run(state, instruction)
        elif keyword in ("COPY", "ADD"):
            await self._copy(state, instruction)
        elif keyword == "WORKDIR":
            await self._workdir(state, instruction)
        elif keyword in _METADATA:
            await self._metadata(state, instruction)
        elif keyword == "FROM":
            raise InvalidParameter("FROM is not allowed here")
        else:
            raise InvalidParameter(f"unknown instruction: {keyword}")

    def _env_for_words(self, state: _Stage) -> dict[str, str]:
        """What ``$VAR`` means in an instruction: the stage's ARGs, then its ENV over them."""
        env = {k: v for k, v in state.args.items() if v is not None}
        env.update(state.env)
        return env

    def _run_args(self, state: _Stage) -> dict[str, str]:
        """The build arguments a RUN sees as environment variables (ENV wins over them)."""
        values = {k: v for k, v in state.args.items() if v is not None and k not in state.env}
        for key in PREDEFINED_ARGS:
            value = self.options.build_args.get(key)
            if value is not None and key not in state.env:
                values[key] = value
                self.consumed.add(key)
        return values

    async def _metadata(self, state: _Stage, instruction: Instruction) -> None:
        keyword = instruction.keyword
        config = state.container_config
        env = self._env_for_words(state)
        escape = self.escape
        if keyword == "ENV":
            current = state.env
            for key, value in key_values(instruction, env, escape=escape):
                current[key] = value or ""
                env[key] = value or ""
            config["Env"] = [f"{k}={v}" for k, v in current.items()]
        elif keyword == "ARG":
            for key, declared in key_values(instruction, env, escape=escape):
                default = self.meta_args.get(key) if declared is None else declared
                state.args[key] = self._arg_value(key, default)
        elif keyword == "USER":
            config["User"] = expand_arguments(instruction, env, escape=escape)[0]
        elif keyword == "CMD":
            config["Cmd"] = command_line(instruction, state.shell)
            state.cmd_set = True
        elif keyword == "ENTRYPOINT":
            config["Entrypoint"] = command_line(instruction, state.shell)
            if not state.cmd_set:
                config["Cmd"] = None
        elif keyword == "EXPOSE":
            ports = dict(config.get("ExposedPorts") or {})
            for word in expand_arguments(instruction, env, escape=escape):
                ports.update({port: {} for port in _exposed(word)})
            config["ExposedPorts"] = ports
        elif keyword == "LABEL":
            labels = dict(config.get("Labels") or {})
            labels.update((k, v or "") for k, v in key_values(instruction, env, escape=escape))
            config["Labels"] = labels
        elif keyword == "VOLUME":
            words = expand_arguments(instruction, env, escape=escape)
            if not words or any(not word.strip() for word in words):
                raise InvalidParameter("VOLUME specified can not be an empty string")
            volumes = dict(config.get("Volumes") or {})
            volumes.update({word: {} for word in words})
            config["Volumes"] = volumes
        elif keyword == "STOPSIGNAL":
            config["StopSignal"] = expand_arguments(instruction, env, escape=escape)[0]
        elif keyword == "HEALTHCHECK":
            config["Healthcheck"] = healthcheck(instruction)
        elif keyword == "SHELL":
            if instruction.exec_form is None:
                raise InvalidParameter("SHELL requires the arguments to be in JSON form")
            config["Shell"] = list(instruction.exec_form)
        elif keyword == "ONBUILD":
            # the trigger with its heredoc bodies, to be parsed again (the parser has refused
            # ONBUILD, FROM and MAINTAINER as triggers)
            config["OnBuild"] = [*(config.get("OnBuild") or []), instruction.trigger]
        elif keyword == "MAINTAINER":
            state.config["author"] = instruction.arguments.strip()
        description = f"#(nop)  {_history_text(instruction)}"
        key = self._cache_key(state, [keyword, description])
        if not self._cached(state, key):
            await self._record(state, key, description, None)

    # -- commits -----------------------------------------------------------------------------

    def _created_by(self, state: _Stage, text: str) -> str:
        return " ".join([*state.shell, text]) if text.startswith("#(nop)") else text

    def _cache_key(self, state: _Stage, payload: Sequence[Any]) -> str:
        data = json.dumps([state.image_id or "", state.config.get("config") or {}, *payload])
        return "sha256:" + hashlib.sha256(data.encode()).hexdigest()

    def _cached(self, state: _Stage, key: str) -> bool:
        """Move to the image the cache has for ``key``; whether it had one."""
        if self.options.no_cache:
            return False
        image_id = self.images.store.cached_step(key)
        if image_id is None:
            return False
        state.image_id = image_id
        state.config = self.images.config(image_id)
        self.say(" ---> Using cache\n")
        self.say(f" ---> {short_id(image_id)}\n")
        return True

    async def _commit_scratch(self) -> str:
        state = _Stage(None, (await self._from("scratch", None)).config)
        return await self._commit(state, None, "", empty=True)

    async def _record(self, state: _Stage, key: str, description: str, layer: Path | None) -> None:
        """Commit the step's image (``layer``: a tar of what it changed, or None) and
        remember it in the cache under ``key``."""
        parent = state.image_id
        created_by = self._created_by(state, description)
        image_id = await self._commit(state, layer, created_by)
        size = 0
        record = self.images.store.image(image_id)
        if layer is not None and record is not None:
            layers = self.images.layers_of(record)
            size = layers[-1].size if layers else 0
        now = time.time()
        self.images.store.add_cached_step(
            CacheRecord(key, image_id, parent, created_by, size, now, now, 1)
        )
        self.say(f" ---> {short_id(image_id)}\n")

    async def _commit(
        self, state: _Stage, layer: Path | None, created_by: str, *, empty: bool = False
    ) -> str:
        """A new image: the stage's config plus ``layer`` (a tar), on top of its image."""
        content = self.images.content
        blobs: list[str] = []
        if state.image_id is not None:
            record = self.images.store.image(state.image_id)
            assert record is not None
            blobs = [layer_record.blob or "" for layer_record in self.images.layers_of(record)]
        config = state.config
        config["created"] = now_rfc3339()
        history = list(config.get("history") or [])
        entry: dict[str, Any] = {"created": config["created"], "created_by": created_by}
        if layer is not None:
            blob = await asyncio.to_thread(_store_layer, content, layer)
            blobs.append(blob)
            rootfs = config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
            rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), blob]
        else:
            entry["empty_layer"] = True
        if not empty:
            history.append(entry)
        config["history"] = history
        raw = json.dumps(config, separators=(",", ":")).encode()
        config_digest = content.write(raw)
        async with self.images.lock:
            image_id, _ = await self.images.add_image(config_digest, blobs, parent=state.image_id)
        state.image_id = image_id
        state.config = json.loads(raw)
        return image_id

    async def _ensure_image(self, state: _Stage) -> str:
        """An image to run a container from (a stage FROM scratch has none yet)."""
        if state.image_id is None:
            await self._commit(state, None, "", empty=True)
        assert state.image_id is not None
        return state.image_id

    # -- RUN ---------------------------------------------------------------------------------

    async def _run(self, state: _Stage, instruction: Instruction) -> None:
        command = command_line(instruction, state.shell)
        run_args = self._run_args(state)
        persisted = sorted((k, v) for k, v in run_args.items() if k not in PREDEFINED_ARGS)
        description = " ".join(command)
        if persisted:
            pairs = " ".join(f"{k}={v}" for k, v in persisted)
            description = f"|{len(persisted)} {pairs} {description}"
        script = run_script(instruction)
        scripts = [script.content] if script is not None else []
        key = self._cache_key(state, ["RUN", description, self.options.network_mode, *scripts])
        if self._cached(state, key):
            return
        image_id = await self._ensure_image(state)
        with tempfile.TemporaryDirectory(dir=self.images.tmp) as scratch:
            binds: list[str] = []
            if script is not None:  # RUN <<EOF with #!: the body runs as /dev/pipes/<name>
                pipes = Path(scratch) / "pipes"
                pipes.mkdir()
                (pipes / script.name).write_text(script.content)
                (pipes / script.name).chmod(0o755)
                binds.append(f"{pipes}:/dev/pipes:ro")
            layer = Path(scratch) / "layer.tar"
            await self._run_container(image_id, command, run_args, layer, binds)
            await self._record(state, key, description, None if _empty_tar(layer) else layer)

    async def _run_container(
        self,
        image_id: str,
        command: list[str],
        run_args: Mapping[str, str],
        layer: Path,
        binds: Sequence[str] = (),
    ) -> None:
        """Run ``command`` in a container of ``image_id``, its output to the stream, and
        write what it changed to ``layer``."""
        containers = self.builder.containers
        body = {
            "Image": image_id,
            "Cmd": command,
            "Entrypoint": [""],
            "Env": [f"{k}={v}" for k, v in run_args.items()],
            "AttachStdout": True,
            "AttachStderr": True,
            "Labels": {},
            "HostConfig": {
                "NetworkMode": self.options.network_mode or "default",
                "LogConfig": {"Type": "none", "Config": {}},
                "Binds": list(binds),
            },
        }
        container, _ = await containers.create(body, None)
        self.say(f" ---> Running in {container.id[:12]}\n")
        succeeded = False
        try:
            exited = containers.wait_future(container, "next-exit")
            attaching = asyncio.ensure_future(
                containers.attach(container, stdin=False, stdout=True, stderr=True)
            )
            await asyncio.sleep(0)
            try:
                await containers.start(container)
            except BaseException:
                attaching.cancel()
                raise
            stream = await attaching
            try:
                await self._relay(stream)
            finally:
                stream.close()
            code = await exited
            if code != 0:
                raise BuildError(
                    f"The command '{' '.join(command)}' returned a non-zero code: {code}", code
                )
            with layer.open("wb") as out:
                await self.images.driver.diff(container.id, out)
            succeeded = True
        finally:
            if succeeded or self.options.force_remove or self.options.remove:
                with contextlib.suppress(PydockerdError):
                    await containers.remove(container, force=True, volumes=True)
                if succeeded:
                    self.say(f" ---> Removed intermediate container {container.id[:12]}\n")

    async def _relay(self, stream: Any) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while True:
            item = await read_frame(stream.reader)
            if item is None:
                break
            kind, payload = item
            if kind == EXIT_STREAM:
                continue
            text = decoder.decode(payload)
            if text:
                self.say(text)
        rest = decoder.decode(b"", final=True)
        if rest:
            self.say(rest)

    # -- COPY, ADD, WORKDIR ------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _new_layer(self, state: _Stage, diff: Path) -> AsyncIterator[Path]:
        """A writable layer on top of the stage's image, mounted (its root); once the block
        ends, ``diff`` holds a tar of what changed in it, and the layer is gone."""
        driver = self.images.driver
        top = None
        if state.image_id is not None:
            record = self.images.store.image(state.image_id)
            layers = self.images.layers_of(record) if record else []
            top = layers[-1].cache_id if layers else None
        layer_id = secrets.token_hex(32)
        await driver.create(layer_id, top)
        try:
            root = await driver.mount(layer_id)
            try:
                yield root
            finally:
                await driver.unmount(layer_id)
            with diff.open("wb") as out:
                await driver.diff(layer_id, out)
        finally:
            await driver.remove(layer_id)

    @contextlib.asynccontextmanager
    async def _source_root(self, instruction: Instruction) -> AsyncIterator[Path]:
        """Where COPY takes files from: the context, or ``--from``'s stage or image."""
        source = instruction.flag("from")
        if not source:
            yield self.context
            return
        source = expand(source, self._arg_env(), escape=self.escape)
        if source.lower() in self.finished:
            image_id = self.finished[source.lower()]
        else:
            image_id = (await self._base_image(source, None)).id
        if image_id is None:  # an empty scratch stage
            with tempfile.TemporaryDirectory(dir=self.images.tmp) as empty:
                yield Path(empty)
            return
        record = self.images.store.image(image_id)
        layers = self.images.layers_of(record) if record else []
        if not layers:
            with tempfile.TemporaryDirectory(dir=self.images.tmp) as empty:
                yield Path(empty)
            return
        driver = self.images.driver
        root = await driver.mount(layers[-1].cache_id)
        try:
            yield root
        finally:
            await driver.unmount(layers[-1].cache_id)

    async def _copy(self, state: _Stage, instruction: Instruction) -> None:
        keyword = instruction.keyword
        env = self._env_for_words(state)
        sources_given, destination = sources_and_dest(instruction, env, escape=self.escape)
        workdir = state.container_config.get("WorkingDir") or "/"
        if not destination.startswith("/"):
            trailing = destination.endswith("/") or destination in (".", "./")
            destination = str(Path(workdir) / destination) + ("/" if trailing else "")
        heredocs = [source for source in sources_given if isinstance(source, Heredoc)]
        paths = [source for source in sources_given if isinstance(source, str)]
        urls = [path for path in paths if keyword == "ADD" and _URL.match(path)]
        local = [path for path in paths if path not in urls]
        chmod = files.parse_chmod(instruction.flag("chmod"))
        with tempfile.TemporaryDirectory(dir=self.images.tmp) as scratch:
            fetched = [await self._fetch(url, Path(scratch)) for url in urls]
            async with self._source_root(instruction) as root:
                sources = await asyncio.to_thread(files.find_sources, root, local, keyword)
                digest = await asyncio.to_thread(
                    files.content_digest, sources + fetched, [doc.content for doc in heredocs]
                )
                description = f"#(nop) {keyword} {digest} in {destination} "
                flags = [instruction.flag("chown") or "", instruction.flag("chmod") or ""]
                key = self._cache_key(state, [keyword, description, *flags])
                if self._cached(state, key):
                    return
                layer = Path(scratch) / "layer.tar"
                placement = _Placement(
                    keyword,
                    destination,
                    sources,
                    fetched,
                    heredocs,
                    instruction.flag("chown"),
                    chmod,
                )
                async with self._new_layer(state, layer) as rootfs:
                    await asyncio.to_thread(placement.apply, rootfs)
                await self._record(state, key, description, layer)

    async def _fetch(self, url: str, directory: Path) -> Path:
        """ADD <url>: the file, named after the URL's last path component."""
        name = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "download"
        path = directory / name
        try:
            timeout = aiohttp.ClientTimeout(total=_FETCH_TIMEOUT)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url) as response,
            ):
                if response.status != 200:
                    raise BuildError(f"failed to fetch {url}: {response.status} {response.reason}")
                with path.open("wb") as out:
                    async for chunk in response.content.iter_chunked(1 << 20):
                        out.write(chunk)
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise BuildError(f"failed to fetch {url}: {e or type(e).__name__}") from None
        return path

    async def _workdir(self, state: _Stage, instruction: Instruction) -> None:
        env = self._env_for_words(state)
        value = expand_arguments(instruction, env, escape=self.escape)[0]
        if not value:
            raise InvalidParameter("WORKDIR requires exactly one argument")
        current = state.container_config.get("WorkingDir") or "/"
        workdir = str(Path(current) / value) if not value.startswith("/") else value
        state.container_config["WorkingDir"] = workdir
        description = f"#(nop) WORKDIR {workdir}"
        key = self._cache_key(state, ["WORKDIR", description])
        if self._cached(state, key):
            return
        with tempfile.TemporaryDirectory(dir=self.images.tmp) as scratch:
            layer = Path(scratch) / "layer.tar"
            async with self._new_layer(state, layer) as rootfs:
                made = await asyncio.to_thread(_make_workdir, rootfs, workdir)
            await self._record(state, key, description, layer if made else None)


@dataclass(frozen=True)
class _Placement:
    """What one COPY or ADD puts in the new layer; :meth:`apply` runs in a worker thread."""

    keyword: str
    destination: str
    sources: Sequence[Path]
    fetched: Sequence[Path]
    heredocs: Sequence[Heredoc]
    chown: str | None
    chmod: int | None

    def apply(self, rootfs: Path) -> None:
        owner = files.parse_chown(self.chown, rootfs)
        destination = self.destination
        files.copy_sources(
            self.sources,
            rootfs,
            destination,
            owner=owner,
            mode=self.chmod,
            unpack=self.keyword == "ADD",
            instruction=self.keyword,
        )
        into = destination.endswith("/")
        for path in self.fetched:  # ADD <url>: a file, 0600 unless --chmod
            target = destination + path.name if into else destination
            mode = self.chmod if self.chmod is not None else 0o600
            files.copy_sources([path], rootfs, target, owner=owner, mode=mode)
        for doc in self.heredocs:
            target = destination + doc.name if into else destination
            mode = self.chmod if self.chmod is not None else 0o644
            files.write_file(rootfs, target, doc.content.encode(), owner, mode)


def _store_layer(content: ContentStore, layer: Path) -> str:
    """The layer tar into the content store (a worker thread's job: it may be large)."""
    with layer.open("rb") as f, content.ingest() as writer:
        writer.copy_from(f)
        return writer.commit()


def _make_workdir(rootfs: Path, workdir: str) -> bool:
    """Make the WORKDIR when missing; whether it was."""
    if resolve_in_root(rootfs, workdir.lstrip("/")).is_dir():
        return False
    files.ensure_directory(rootfs, workdir, files.Ownership())
    return True


def _empty_tar(path: Path) -> bool:
    with tarfile.open(path, mode="r:") as tar:
        return tar.next() is None


def _exposed(word: str) -> list[str]:
    """``EXPOSE 80``, ``80/udp``, ``8000-8002/tcp`` as ``ExposedPorts`` keys."""
    port, _, proto = word.partition("/")
    proto = (proto or "tcp").lower()
    first, _, last = port.partition("-")
    if not first.isdigit() or (last and not last.isdigit()):
        raise InvalidParameter(f"invalid containerPort: {port}")
    end = int(last) if last else int(first)
    return [f"{number}/{proto}" for number in range(int(first), end + 1)]


def _history_text(instruction: Instruction) -> str:
    """How the legacy builder writes a config-only step in ``created_by``."""
    exec_form = instruction.exec_form
    if instruction.keyword in ("CMD", "ENTRYPOINT", "SHELL", "VOLUME") and exec_form is not None:
        return f"{instruction.keyword} {json.dumps(list(exec_form))}"
    if instruction.keyword in ("CMD", "ENTRYPOINT"):
        return f'{instruction.keyword} ["/bin/sh" "-c" "{instruction.arguments.strip()}"]'
    return f"{instruction.keyword} {instruction.arguments.strip()}"
