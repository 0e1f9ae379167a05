"""The home file: YAML in, a validated `Home` out, or a `HomeFileError` that names the line.

```yaml
name: Our Home
areas:
  - {id: kitchen, name: Kitchen, aliases: [cooking area]}
devices:
  - {id: light.kitchen_ceiling, name: Kitchen light, area: kitchen, aliases: [ceiling light],
     state: {on: false, brightness: 100}}
```

The file is composed into YAML's node tree (not loaded straight into dicts) so every error can
say where it is, and so that keys are read as written: YAML 1.1 reads a bare `on` as `true`,
which would turn the light's `on:` key into a boolean. Values are YAML's (`on: yes` is true).

Areas: `id` (lowercase letters, digits, `_`), `name` (default: the id, capitalised), `aliases`.
Devices: `id` is `<domain>.<object>` with a domain of `model.DOMAINS` (as in Home Assistant),
`name` (default: the object id, capitalised), `area` (an area's id, optional), `aliases`,
`device_class` (HA's: `garage`, `blind`, `door`...), `state` (attributes of the domain; any left
out take the domain's defaults in `attributes.SPECS`: a light starts off at brightness 100).
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from assistant.errors import HomeFileError, InvalidAction
from assistant.home import attributes
from assistant.home.model import DOMAINS, Area, Device, Home

ID_PART = set("abcdefghijklmnopqrstuvwxyz0123456789_")
TOP_KEYS = ("name", "areas", "devices")
AREA_KEYS = ("id", "name", "aliases")
DEVICE_KEYS = ("id", "name", "area", "aliases", "device_class", "state")


def sample_home_path() -> Path:
    """The sample home that ships with the package (`make demo` uses it)."""
    return Path(str(resources.files("assistant.home").joinpath("sample_home.yaml")))


def empty_home(name: str) -> Home:
    """A home without areas or devices (the gateway without a home file)."""
    digest = hashlib.sha256(f"empty home: {name}".encode()).hexdigest()
    return Home(name=name, areas=(), devices=(), digest=digest)


def load_home(path: Path) -> Home:
    """Read and validate a home file; `HomeFileError` names the file and line of any problem."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise HomeFileError(
            f"cannot read the home file {path}: {exc.strerror or exc}; set GALAXY_HOME_FILE to "
            "a readable YAML file (or unset it for an empty home)"
        ) from exc
    return parse_home(data, str(path))


def parse_home(data: bytes | str, source: str = "home.yaml") -> Home:
    """Validate a home file's content; `source` names it in error messages."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HomeFileError(f"{source}: not UTF-8 text (byte {exc.start})") from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise HomeFileError(f"{source}{where}: not valid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise HomeFileError(f"{source}: not valid YAML: {exc}") from exc
    if root is None:
        raise HomeFileError(f"{source} line 1: the file is empty; it needs name and devices")
    reader = _Reader(source)
    home = reader.home(root)
    return Home(home.name, home.areas, home.devices, hashlib.sha256(raw).hexdigest())


class _Reader:
    """Walks the node tree; every `fail` names the node's line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._constructor = yaml.constructor.SafeConstructor()

    def fail(self, node: Node, message: str) -> NoReturn:
        raise HomeFileError(f"{self.source} line {node.start_mark.line + 1}: {message}")

    # ----- YAML shapes -----

    def mapping(
        self, node: Node, what: str, keys: tuple[str, ...], required: tuple[str, ...]
    ) -> dict[str, tuple[Node, Node]]:
        """Key text -> (key node, value node); unknown, repeated and missing keys fail."""
        if not isinstance(node, MappingNode):
            self.fail(node, f"{what} must be a mapping of {', '.join(keys)}")
        out: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.fail(key_node, f"{what} has a key that is not a name")
            key = str(key_node.value)  # as written: a bare `on` stays "on"
            if keys and key not in keys:
                self.fail(key_node, f"{what} has unknown key {key!r}; keys: {', '.join(keys)}")
            if key in out:
                self.fail(key_node, f"{what} has {key!r} twice")
            out[key] = (key_node, value_node)
        for key in required:
            if key not in out:
                self.fail(node, f"{what} has no {key!r}")
        return out

    def scalar(self, node: Node, what: str) -> Any:
        if not isinstance(node, ScalarNode):
            self.fail(node, f"{what} must be a single value, not a list or mapping")
        return self._constructor.construct_object(node)

    def text(self, node: Node, what: str) -> str:
        value = self.scalar(node, what)
        if not isinstance(value, str) or not value.strip():
            self.fail(node, f"{what} must be non-empty text, not {value!r}")
        return value.strip()

    def ident(self, node: Node, what: str) -> str:
        value = self.text(node, what)
        if not set(value) <= ID_PART:
            self.fail(node, f"{what} {value!r} may hold only lowercase letters, digits and '_'")
        return value

    def texts(self, node: Node, what: str) -> tuple[str, ...]:
        if not isinstance(node, SequenceNode):
            self.fail(node, f"{what} must be a list, e.g. [ceiling light, big light]")
        return tuple(self.text(item, what) for item in node.value)

    def items(self, node: Node, what: str) -> list[Node]:
        if not isinstance(node, SequenceNode):
            self.fail(node, f"{what} must be a list (one '- ...' item each)")
        return list(node.value)

    # ----- the home -----

    def home(self, root: Node) -> Home:
        top = self.mapping(root, "the home file", TOP_KEYS, ("name", "devices"))
        name = self.text(top["name"][1], "the home's name")
        areas: dict[str, Area] = {}
        if "areas" in top:
            for node in self.items(top["areas"][1], "areas"):
                area = self.area(node)
                if area.id in areas:
                    self.fail(node, f"area {area.id!r} is defined twice")
                areas[area.id] = area
        devices: dict[str, Device] = {}
        for node in self.items(top["devices"][1], "devices"):
            device = self.device(node, areas)
            if device.id in devices:
                self.fail(node, f"device {device.id!r} is defined twice")
            devices[device.id] = device
        return Home(name, tuple(areas.values()), tuple(devices.values()))

    def area(self, node: Node) -> Area:
        fields = self.mapping(node, "an area", AREA_KEYS, ("id",))
        area_id = self.ident(fields["id"][1], "area id")
        name = (
            self.text(fields["name"][1], f"area {area_id!r}'s name")
            if "name" in fields
            else area_id.replace("_", " ").capitalize()
        )
        aliases = self.texts(fields["aliases"][1], "aliases") if "aliases" in fields else ()
        return Area(area_id, name, aliases)

    def device(self, node: Node, areas: dict[str, Area]) -> Device:
        fields = self.mapping(node, "a device", DEVICE_KEYS, ("id",))
        id_node = fields["id"][1]
        device_id = self.text(id_node, "device id")
        domain, dot, obj = device_id.partition(".")
        if not dot or not obj or not set(obj) <= ID_PART:
            self.fail(
                id_node,
                f"device id {device_id!r} is not '<domain>.<object>' with lowercase letters, "
                f"digits and '_' (e.g. light.kitchen_ceiling)",
            )
        if domain not in DOMAINS:
            self.fail(
                id_node,
                f"device {device_id!r} has unknown domain {domain!r}; domains: "
                f"{', '.join(DOMAINS)}",
            )
        what = f"device {device_id!r}"
        name = (
            self.text(fields["name"][1], f"{what}'s name")
            if "name" in fields
            else obj.replace("_", " ").capitalize()
        )
        area_id = None
        if "area" in fields:
            area_node = fields["area"][1]
            area_id = self.text(area_node, f"{what}'s area")
            if area_id not in areas:
                known = ", ".join(areas) or "none are defined"
                self.fail(area_node, f"{what} names unknown area {area_id!r} (areas: {known})")
        aliases = (
            self.texts(fields["aliases"][1], f"{what}'s aliases") if "aliases" in fields else ()
        )
        device_class = (
            self.ident(fields["device_class"][1], f"{what}'s device_class")
            if "device_class" in fields
            else None
        )
        device = Device(device_id, name, area_id, aliases, {}, device_class)
        state = (
            self.state(fields["state"][1], device)
            if "state" in fields
            else attributes.defaults(domain)
        )
        return Device(device_id, name, area_id, aliases, state, device_class)

    def state(self, node: Node, device: Device) -> dict[str, Any]:
        """The device's initial state: the file's attributes over the domain's defaults."""
        what = f"device {device.id!r}"
        keys = tuple(attributes.SPECS[device.domain])
        if not isinstance(node, MappingNode):
            self.fail(node, f"{what}'s state must be a mapping of {', '.join(keys)}")
        given: dict[str, Any] = {}
        for key, (key_node, value_node) in self.mapping(node, f"{what}'s state", (), ()).items():
            if key not in keys:
                self.fail(
                    key_node,
                    f"{what} has no state attribute {key!r}; a {device.domain} has: "
                    f"{', '.join(keys)}",
                )
            given[key] = (value_node, self.scalar(value_node, f"{what}'s {key}"))
        unit = given["unit"][1] if "unit" in given else None
        for key, (value_node, value) in given.items():
            try:
                attributes.check_value(device, key, value, unit if isinstance(unit, str) else None)
            except InvalidAction as exc:
                self.fail(value_node, f"{what}: {exc}")
        start = attributes.defaults(device.domain)
        if not given:
            return start
        try:
            return attributes.apply(
                device, start, {k: v for k, (_, v) in given.items()}, from_file=True
            )
        except InvalidAction as exc:
            self.fail(node, f"{what}: {exc}")
