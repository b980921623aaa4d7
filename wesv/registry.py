"""A small name → (factory, config dataclass) registry, filled by decorators (encoders, methods)."""
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from wesv.errors import WesvError

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    factory: Callable[..., T]
    config: type | None


class Registry(Generic[T]):
    """Maps a name (the ``type:`` / ``name:`` in a config) to a factory and its typed config dataclass."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, config: type | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: ``@REG.register("ecapa_tdnn", config=EcapaConfig)``."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = Entry(factory, config)
            return factory

        return deco

    def get(self, name: str) -> Entry[T]:
        """Look up a name; unknown names fail listing the known ones."""
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise WesvError(f"unknown {self.kind} {name!r}; known: {known}")
        return self._entries[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries
