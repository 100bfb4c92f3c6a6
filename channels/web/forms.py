"""The Edit form of a pending approval, built from the action's JSON schema, and its submission read back.

Values go back as strings (or None for a cleared optional field); the service validates them with the
action's pydantic model, so the form never decides what is valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from bot.actions import Action, action_schema
from bot.field_help import field_hint

PREFIX = "arg."
Widget = Literal["select", "number", "text", "checkbox"]


@dataclass(frozen=True)
class Field:
    """One input of the Edit form."""

    name: str
    label: str
    widget: Widget
    value: str
    required: bool
    choices: list[str] = field(default_factory=list)
    help: str | None = None
    step: str | None = None
    error: str | None = None  # shown beside the input after a refused edit, in plain words

    @property
    def input_name(self) -> str:
        return PREFIX + self.name


def _kind(prop: dict[str, Any]) -> tuple[str, list[str]]:
    """The JSON type and enum choices of a property, looking through ``anyOf [X, null]``."""
    if "anyOf" in prop:
        for option in prop["anyOf"]:
            if option.get("type") != "null":
                return _kind(option)
    if "enum" in prop:
        return "enum", [str(v) for v in prop["enum"]]
    if "const" in prop:
        return "enum", [str(prop["const"])]
    return str(prop.get("type", "string")), []


def _value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def edit_fields(action: type[Action], arguments: Mapping[str, Any]) -> list[Field]:
    """Inputs for every argument of ``action``, filled with the proposed values."""
    params = action_schema(action).parameters
    required = set(params.get("required", []))
    fields = []
    for name, prop in params.get("properties", {}).items():
        kind, choices = _kind(prop)
        current = arguments.get(name, prop.get("default"))
        widget: Widget = "text"
        step = None
        if kind == "enum":
            widget = "select"
        elif kind == "boolean":
            widget, choices = "checkbox", []
        elif kind in ("integer", "number"):
            widget, step = "number", ("1" if kind == "integer" else "any")
        fields.append(Field(
            name=name, label=name.replace("_", " "), widget=widget, value=_value(current),
            required=name in required, choices=choices, step=step,
            help=prop.get("description") if widget in ("select", "checkbox") else field_hint(prop) or None,
        ))
    return fields


def with_errors(fields: list[Field], form: Mapping[str, str], errors: Mapping[str, str]) -> list[Field]:
    """The fields again with what was typed in them and each field's problem (a refused edit, shown again)."""
    return [replace(f, value=form.get(f.input_name, f.value) if f.widget != "checkbox" else f.value,
                    error=errors.get(f.name)) for f in fields]


def submitted_arguments(action: type[Action], form: Mapping[str, str]) -> dict[str, Any]:
    """Read the Edit form back: every field of the action, empty optional ones as None, booleans as text."""
    arguments: dict[str, Any] = {}
    for spec in edit_fields(action, {}):
        if spec.widget == "checkbox":
            arguments[spec.name] = "true" if form.get(spec.input_name) else "false"
            continue
        raw = form.get(spec.input_name)
        if raw is None:
            continue
        text = raw.strip()
        arguments[spec.name] = None if text == "" and not spec.required else text
    return arguments
