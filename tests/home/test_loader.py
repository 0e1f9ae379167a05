"""The home file: a good file becomes a Home with defaults filled in; every kind of bad file
is refused with its line number."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.errors import HomeFileError
from assistant.home.loader import load_home, parse_home, sample_home_path
from assistant.home.model import DOMAINS

GOOD = """\
name: Our Home
areas:
  - {id: kitchen, name: Kitchen, aliases: [cooking area]}
  - {id: hall}
devices:
  - {id: light.kitchen_ceiling, name: Kitchen light, area: kitchen, aliases: [ceiling light],
     state: {on: false, brightness: 100}}
  - id: cover.garage_door
    name: Garage door
    device_class: garage
    state: {open: true}
  - {id: lock.front_door, name: Front door, area: hall}
  - {id: light.porch}
"""


def refused(text: str) -> str:
    with pytest.raises(HomeFileError) as info:
        parse_home(text, "home.yaml")
    return str(info.value)


def test_a_good_file_gives_areas_and_devices_with_their_names() -> None:
    home = parse_home(GOOD)

    assert home.name == "Our Home"
    assert [a.id for a in home.areas] == ["kitchen", "hall"]
    assert home.areas[0].aliases == ("cooking area",)
    light = home.device("light.kitchen_ceiling")
    assert light is not None
    assert (light.name, light.area, light.aliases) == (
        "Kitchen light",
        "kitchen",
        ("ceiling light",),
    )
    assert light.state == {"on": False, "brightness": 100}


def test_names_default_to_the_capitalised_id() -> None:
    home = parse_home(GOOD)

    assert home.area("hall").name == "Hall"  # type: ignore[union-attr]
    assert home.device("light.porch").name == "Porch"  # type: ignore[union-attr]


def test_missing_state_attributes_take_the_domain_defaults() -> None:
    home = parse_home(GOOD)

    assert home.device("light.porch").state == {"on": False, "brightness": 100}  # type: ignore[union-attr]
    assert home.device("lock.front_door").state == {"locked": True}  # type: ignore[union-attr]


def test_an_open_cover_without_a_position_is_fully_open() -> None:
    cover = parse_home(GOOD).device("cover.garage_door")

    assert cover is not None and cover.state == {"open": True, "position": 100}
    assert cover.device_class == "garage"


def test_a_bare_on_key_stays_the_attribute_on_not_yaml_true() -> None:
    home = parse_home("name: H\ndevices:\n  - {id: switch.kettle, state: {on: yes}}\n")

    assert home.device("switch.kettle").state == {"on": True}  # type: ignore[union-attr]


def test_the_digest_follows_the_content() -> None:
    assert parse_home(GOOD).digest == parse_home(GOOD).digest
    assert parse_home(GOOD).digest != parse_home(GOOD + "  - {id: light.extra}\n").digest


def test_an_unknown_area_is_refused_with_its_line_and_the_known_areas() -> None:
    text = GOOD.replace("area: hall}", "area: hal}")

    assert refused(text) == (
        "home.yaml line 12: device 'lock.front_door' names unknown area 'hal' "
        "(areas: kitchen, hall)"
    )


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("name: H\ndevices: [\n", 3, "not valid YAML"),
        ("name: H\ndevices:\n  - {id: light.a\n  - {id: light.b}\n", 4, "not valid YAML"),
        ("name: H\ndevices:\n  - {id: lamp}\n", 3, "not '<domain>.<object>'"),
        ("name: H\ndevices:\n  - {id: bulb.lamp}\n", 3, "unknown domain 'bulb'"),
        ("name: H\ndevices:\n  - {id: light.Lamp}\n", 3, "not '<domain>.<object>'"),
        ("name: H\ndevices:\n  - {id: light.a}\n  - {id: light.a}\n", 4, "defined twice"),
        ("name: H\nareas: [{id: a}, {id: a}]\ndevices: []\n", 2, "area 'a' is defined twice"),
        ("name: H\nareas: [{id: Big Room}]\ndevices: []\n", 2, "lowercase letters"),
        ("name: H\ndevices:\n  - id: light.a\n    colour: red\n", 4, "unknown key 'colour'"),
        (
            "name: H\ndevices:\n  - {id: light.a,\n     state: {on: true, hue: 3}}\n",
            4,
            "no state attribute 'hue'; a light has: on, brightness",
        ),
        (
            "name: H\ndevices:\n  - id: light.a\n    state:\n      brightness: 130\n",
            5,
            "brightness goes from 0 to 100, not 130",
        ),
        (
            "name: H\ndevices:\n  - {id: light.a, state: {on: maybe}}\n",
            3,
            "is true or false, not 'maybe'",
        ),
        (
            "name: H\ndevices:\n  - {id: cover.a, state: {open: false, position: 40}}\n",
            3,
            "cannot be closed at position 40",
        ),
        (
            "name: H\ndevices:\n  - {id: climate.a, state: {target_temperature: 21, unit: °F}}\n",
            3,
            "goes from 41 to 95 degrees, not 21",
        ),
        ("name: H\ndevices:\n  - {id: climate.a, state: {unit: K}}\n", 3, "°C, °F, not 'K'"),
        ("name: H\ndevices:\n  - {id: light.a, aliases: lamp}\n", 3, "must be a list"),
        ("name: H\ndevice:\n  - {id: light.a}\n", 2, "unknown key 'device'"),
        ("name: H\nname: I\ndevices: []\n", 2, "has 'name' twice"),
        ("name: H\n", 1, "has no 'devices'"),
        ("- a\n- b\n", 1, "must be a mapping"),
        ("", 1, "the file is empty"),
    ],
)
def test_a_bad_file_is_refused_at_its_line(text: str, line: int, words: str) -> None:
    message = refused(text)

    assert message.startswith(f"home.yaml line {line}: "), message
    assert words in message, message


def test_a_missing_file_says_which_setting_to_fix(tmp_path: Path) -> None:
    with pytest.raises(HomeFileError, match="GALAXY_HOME_FILE"):
        load_home(tmp_path / "nowhere.yaml")


def test_the_sample_home_is_packaged_and_covers_every_domain() -> None:
    path = sample_home_path()

    home = load_home(path)

    assert path.is_file() and path.parent.name == "home"
    assert 6 <= len(home.areas) <= 8
    assert 20 <= len(home.devices) <= 30
    assert {d.domain for d in home.devices} == set(DOMAINS)
    assert any(d.aliases for d in home.devices) and any(a.aliases for a in home.areas)
