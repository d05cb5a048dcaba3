"""Versioned physical indices behind a read alias and a write alias.

Readers and writers only ever name the aliases; a reindex builds `{prefix}-v{N+1}` and
`swap` moves both aliases in one atomic update, so no reader sees a half-built index and
no writer keeps feeding the old one.
"""

from __future__ import annotations

import re
from typing import cast

from elasticsearch import BadRequestError, Elasticsearch, NotFoundError

from pipeline.errors import ConfigError
from pipeline.index.guard import guard
from pipeline.index.mapping import DEFAULT_PREFIX, config_hash, index_settings, mapping

# Elasticsearch index-name rules, minus anything that would make `{prefix}-v*` ambiguous.
_PREFIX = re.compile(r"[a-z0-9][a-z0-9_.-]{0,200}")


class IndexLayout:
    def __init__(
        self, es: Elasticsearch, prefix: str = DEFAULT_PREFIX, *, shards: int = 1, replicas: int | None = None
    ):
        if not _PREFIX.fullmatch(prefix):
            raise ConfigError(f"invalid index prefix {prefix!r}: lowercase letters, digits, '_', '.', '-'")
        self.es = es
        self.prefix = prefix
        self.shards = shards
        self.replicas = replicas
        self._version_re = re.compile(rf"{re.escape(prefix)}-v([1-9][0-9]*)")

    @property
    def read_alias(self) -> str:
        return f"{self.prefix}-read"

    @property
    def write_alias(self) -> str:
        return f"{self.prefix}-write"

    def index_name(self, n: int) -> str:
        return f"{self.prefix}-v{n}"

    def version_of(self, index: str) -> int | None:
        found = self._version_re.fullmatch(index)
        return int(found.group(1)) if found else None

    def versions(self) -> list[str]:
        """Physical indices of this prefix, oldest first (v2 before v10)."""
        # The cat API lists a wildcard on every server we test against (noida-db's index
        # APIs answer wildcards with 404); h= pins the JSON columns, so the shape is stable.
        with guard("list index versions"):
            # the client types every cat answer as text; format=json makes it a list of rows
            rows = cast(
                list[dict[str, str]], self.es.cat.indices(index=f"{self.prefix}-v*", format="json", h="index").body
            )
        names = {row["index"] for row in rows if self.version_of(row["index"]) is not None}
        return sorted(names, key=lambda name: self.version_of(name) or 0)

    def live_index(self) -> str | None:
        """The index the read alias points to; the newest if someone left it on several."""
        indices = self._alias_targets(self.read_alias)
        return indices[-1] if indices else None

    def create_version(self, dims: int, n: int | None = None, *, extra: dict | None = None) -> str:
        """Create `{prefix}-v{n}` (next free N when None); an identical existing one is fine.

        `extra` (say, the encoder's name) joins the mapping in the config hash kept in the
        index's _meta, so an index built for another model is not silently reused.
        """
        if n is None:
            existing = self.versions()
            n = (self.version_of(existing[-1]) or 0) + 1 if existing else 1
        if not isinstance(n, int) or n < 1:
            raise ConfigError(f"index version must be a positive integer, got {n!r}")
        name = self.index_name(n)
        body = mapping(dims)
        wanted = config_hash(body, extra)
        body["_meta"] = {"config_hash": wanted, "dims": dims, "extra": extra or {}}
        try:
            with guard(f"create index {name}"):
                self.es.indices.create(index=name, mappings=body, settings=self._settings())
        except BadRequestError as exc:
            # Creating and catching "already exists" is race-free where checking first is not.
            if exc.message != "resource_already_exists_exception":
                raise
            found = (self._mappings(name).get("_meta") or {}).get("config_hash")
            if found != wanted:
                raise ConfigError(
                    f"{name} already exists with a different mapping (config hash {found}, wanted {wanted})"
                ) from exc
        return name

    def ensure_live(self, dims: int, *, extra: dict | None = None) -> str:
        """Make sure both aliases exist (creating v1 on a fresh cluster); return the live index.

        Idempotent and safe to race: index creation tolerates an identical twin and adding
        an alias that is already there changes nothing. A lone alias left by a manual
        operation is completed rather than duplicated.
        """
        readers = self._alias_targets(self.read_alias)
        writers = self._alias_targets(self.write_alias)
        if not readers and not writers:
            target = self.create_version(dims, 1, extra=extra)
            self._update([self._add(self.read_alias, target), self._add(self.write_alias, target, write=True)])
        elif not writers:
            self._update([self._add(self.write_alias, readers[-1], write=True)])
        elif not readers:
            self._update([self._add(self.read_alias, writers[-1])])
        live = self.live_index()
        if live is None:
            raise ConfigError(f"alias {self.read_alias} vanished while being created")
        have = self._mappings(live).get("properties", {}).get("embedding", {}).get("dims")
        if have is not None and have != dims:
            raise ConfigError(
                f"live index {live} holds {have}-d embeddings but the encoder makes "
                f"{dims}-d ones: build a new version and swap to it"
            )
        return live

    def swap(self, new_index: str) -> str | None:
        """Point both aliases at `new_index` in one atomic update; return the previous live index."""
        if self.version_of(new_index) is None:
            raise ConfigError(f"{new_index!r} is not a {self.prefix}-v<N> index")
        with guard(f"check index {new_index}"):
            if not self.es.indices.exists(index=new_index):
                raise ConfigError(f"cannot swap to {new_index}: it does not exist")
        previous = self.live_index()
        actions = [
            {"remove": {"index": old, "alias": alias}}
            for alias in (self.read_alias, self.write_alias)
            for old in self._alias_targets(alias)
            if old != new_index
        ]
        actions += [self._add(self.read_alias, new_index), self._add(self.write_alias, new_index, write=True)]
        # A remove of an alias that a concurrent swap already moved fails the whole update,
        # so two racing swaps cannot leave an alias on two indices.
        self._update(actions)
        return previous

    def drop(self, index: str) -> None:
        """Delete an old version; refuses indices an alias still points to. Missing is fine."""
        if self.version_of(index) is None:
            raise ConfigError(f"refusing to drop {index!r}: not a {self.prefix}-v<N> index")
        for alias in (self.read_alias, self.write_alias):
            if index in self._alias_targets(alias):
                raise ConfigError(f"refusing to drop {index}: alias {alias} points to it")
        try:
            with guard(f"drop index {index}"):
                self.es.indices.delete(index=index)
        except NotFoundError:
            pass

    def _settings(self) -> dict:
        return index_settings(self.shards, self.replicas)

    def _alias_targets(self, alias: str) -> list[str]:
        # One alias per call: a comma list answers 404 when either name is missing.
        try:
            with guard(f"read alias {alias}"):
                found = self.es.indices.get_alias(name=alias).body
        except NotFoundError:
            return []
        return sorted(found, key=lambda name: (self.version_of(name) or 0, name))

    def meta_extra(self, index: str) -> dict:
        """What besides the mapping shaped `index` (its `_meta.extra`: model fingerprint, chunking, encoder)."""
        return (self._mappings(index).get("_meta") or {}).get("extra") or {}

    def _mappings(self, index: str) -> dict:
        with guard(f"read mapping of {index}"):
            body = self.es.indices.get_mapping(index=index).body
        first: dict = next(iter(body.values()), {})
        return first.get("mappings", {})

    def _update(self, actions: list[dict]) -> None:
        with guard("update aliases"):
            self.es.indices.update_aliases(actions=actions)

    @staticmethod
    def _add(alias: str, index: str, write: bool = False) -> dict:
        action: dict[str, str | bool] = {"index": index, "alias": alias}
        if write:
            action["is_write_index"] = True
        return {"add": action}
