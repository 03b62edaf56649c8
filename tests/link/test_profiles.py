"""Link profiles: the built-in files, users' files, and one-line errors on bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from telesurgery.errors import ConfigError
from telesurgery.link.profiles import load_profile, profile_names

BUILTIN = ["5g-rural-lossy", "5g-urban", "geo-satellite", "lan", "leo-satellite",
           "rome-beijing", "rome-beijing-fibre-only"]


def test_every_builtin_profile_loads_and_cites_its_sources() -> None:
    assert profile_names() == BUILTIN
    for name in BUILTIN:
        profile = load_profile(name)
        assert profile.name == name
        assert profile.sources, f"{name} documents no sources"
        assert profile.paths


def test_rome_beijing_has_fibre_and_5g_paths() -> None:
    profile = load_profile("rome-beijing")
    assert list(profile.paths) == ["fibre", "5g"]
    fibre, five_g = profile.paths["fibre"], profile.paths["5g"]
    assert fibre.forward.delay_ms == fibre.reverse.delay_ms == 49.0
    assert five_g.forward.delay_ms > fibre.forward.delay_ms
    assert five_g.forward.jitter_ms > fibre.forward.jitter_ms
    assert five_g.forward.loss > 0.0
    assert list(load_profile("rome-beijing-fibre-only").paths) == ["fibre"]


def test_geo_satellite_round_trip_is_about_600_ms() -> None:
    (path,) = load_profile("geo-satellite").paths.values()
    assert path.forward.delay_ms + path.reverse.delay_ms == pytest.approx(600.0, rel=0.05)


def test_path_keys_apply_to_both_directions_and_tables_override(tmp_path: Path) -> None:
    f = tmp_path / "mine.toml"
    f.write_text(
        'name = "mine"\ndescription = "test"\n'
        "[paths.a]\ndelay_ms = 10.0\nloss = 0.01\n"
        "[paths.a.reverse]\ndelay_ms = 30.0\n"
    )
    profile = load_profile(f)
    name, path = profile.path()
    assert name == "a"
    assert (path.forward.delay_ms, path.forward.loss) == (10.0, 0.01)
    assert (path.reverse.delay_ms, path.reverse.loss) == (30.0, 0.01)
    assert load_profile(str(f)) == profile


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"no link profile 'mars'.*rome-beijing"):
        load_profile("mars")


def test_unknown_path_lists_the_paths() -> None:
    with pytest.raises(ConfigError, match="no path 'wifi'; choose one of fibre, 5g"):
        load_profile("rome-beijing").path("wifi")


@pytest.mark.parametrize(("body", "field"), [
    ("[paths.a]\ndelay_ms = -5\n", "paths.a.forward.delay_ms"),
    ("[paths.a]\ndelay = 5\n", "paths.a.forward.delay"),
    ("[paths.a.reverse]\nloss = 2\n", "paths.a.reverse.loss"),
    ("[paths.a.forward.burst_loss]\np_enter_bad = 0.1\n", "paths.a.forward.burst_loss.p_leave_bad"),
    ("", "paths"),
])
def test_bad_file_gives_one_line_naming_the_field(tmp_path: Path, body: str, field: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text('name = "bad"\ndescription = "x"\n' + body)
    with pytest.raises(ConfigError) as info:
        load_profile(f)
    message = str(info.value)
    assert "\n" not in message
    assert f"{f}: {field}:" in message


def test_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_profile(tmp_path / "absent.toml")
