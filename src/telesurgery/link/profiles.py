"""Link profiles: named paths with per-direction impairments, loaded from TOML files.

A profile is a built-in name (``rome-beijing``; see ``profile_names()``) or the
path of a user's TOML file. Inside a ``[paths.<name>]`` table, impairment keys
apply to both directions and ``[paths.<name>.forward]`` / ``[paths.<name>.reverse]``
override them per direction. *Forward* is the direction from the side that
connects to the emulator towards the side it forwards to (console to patient
in the demo); *reverse* is the way back (video and state).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from telesurgery.config import load
from telesurgery.errors import ConfigError
from telesurgery.link.impairment import Impairment

PathName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$")]
_DIRECTIONS = ("forward", "reverse")


class PathSpec(BaseModel):
    """One network path: what it does in each direction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    forward: Impairment = Impairment()
    reverse: Impairment = Impairment()

    @model_validator(mode="before")
    @classmethod
    def _shared_keys(cls, data: Any) -> Any:
        # Keys at the path level are the defaults of both directions.
        if not isinstance(data, dict):
            return data
        shared = {k: v for k, v in data.items() if k not in _DIRECTIONS}
        out: dict[str, Any] = {}
        for direction in _DIRECTIONS:
            own = data.get(direction, {})
            out[direction] = {**shared, **own} if isinstance(own, dict) else own
        return out

    def with_delay(self, one_way_ms: float) -> PathSpec:
        """This path with ``one_way_ms`` [ms] of delay each way, all else kept (its jitter,
        loss and caps at another distance: a rung of a latency ladder)."""
        delay = {"delay_ms": one_way_ms}
        return self.model_copy(update={"forward": self.forward.model_copy(update=delay),
                                       "reverse": self.reverse.model_copy(update=delay)})


class Profile(BaseModel):
    """A named set of paths, documented with where its numbers come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: PathName
    description: str
    sources: list[str] = []
    paths: Annotated[dict[PathName, PathSpec], Field(min_length=1)]

    def path(self, name: str | None = None) -> tuple[str, PathSpec]:
        """The path called ``name`` (the first one when None) and its name."""
        if name is None:
            first = next(iter(self.paths))
            return first, self.paths[first]
        try:
            return name, self.paths[name]
        except KeyError:
            raise ConfigError(
                f"profile {self.name!r} has no path {name!r}; choose one of "
                f"{', '.join(self.paths)}"
            ) from None


def _builtin_dir() -> Path:
    return Path(str(resources.files("telesurgery.link").joinpath("profiles")))


def profile_names() -> list[str]:
    """Names of the built-in profiles, sorted."""
    return sorted(p.stem for p in _builtin_dir().glob("*.toml"))


def load_profile(name_or_path: str | Path) -> Profile:
    """A built-in profile by name, or a profile file by path (anything ending in ``.toml``).

    Raises ``ConfigError`` with one line: the valid names for an unknown name, or the
    file and field for a bad file.
    """
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text:
        return load(Profile, Path(text))
    path = _builtin_dir() / f"{text}.toml"
    if not path.is_file():
        raise ConfigError(
            f"no link profile {text!r}; use one of {', '.join(profile_names())} "
            "or the path of a .toml profile file"
        )
    return load(Profile, path)
