"""Name -> object registries filled by a decorator; unknown names are errors that list the known ones."""

from __future__ import annotations

from typing import Callable, Generic, Iterable, Iterator, TypeVar

from ganbench.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A validated mapping from a unique, whitespace-free name to a registered object."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under `name`."""
        if not name or any(ch.isspace() for ch in name):
            raise ValueError(f"{self.kind} name {name!r} must be non-empty and contain no whitespace")

        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        """Return the object registered as `name`, or raise a ConfigError listing the known names."""
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(unknown_name(self.kind, name, self._items)) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


def unknown_name(kind: str, name: object, known: Iterable[str], label: str = "known") -> str:
    """The one-line message for a misspelled name: what was asked, the closest match, and every valid name."""
    import difflib

    names = sorted(known)
    folded = {n.lower(): n for n in names}   # `-m FID` found nothing close: difflib compares case-sensitively
    close = ([folded[str(name).lower()]] if str(name).lower() in folded
             else [folded[m] for m in difflib.get_close_matches(str(name).lower(), sorted(folded), n=1)])
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; {label}: {', '.join(names) or '(none)'}"


def import_submodules(package: str) -> None:
    """Import every module of `package` so that their registration decorators run."""
    import importlib
    import pkgutil

    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
