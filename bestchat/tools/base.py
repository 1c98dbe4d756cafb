"""What a tool is: a name, a description, a JSON schema for its arguments, the function that
runs it, and a risk level that decides whether a person must approve each call.

A typed function with a docstring is a complete tool: :meth:`Tool.from_function` derives the
rest from its signature.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable, Literal, get_type_hints

Risk = Literal["low", "medium", "high"]
RISKS: tuple[Risk, ...] = ("low", "medium", "high")
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

_JSON_TYPES: dict[type, str] = {
    str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object",
}


@dataclass(frozen=True)
class Tool:
    """A tool as registered by a plugin; ``plugin`` is stamped by the registry."""

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any]
    risk: Risk = "low"
    plugin: str | None = None

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.name):
            raise ValueError(f"tool name {self.name!r} must match {NAME_RE.pattern}")
        if self.risk not in RISKS:
            raise ValueError(f"tool {self.name!r}: risk must be one of {', '.join(RISKS)}")
        if not callable(self.function):
            raise TypeError(f"tool {self.name!r}: function is not callable")

    @classmethod
    def from_function(cls, function: Callable[..., Any], *, name: str | None = None,
                      risk: Risk = "low") -> Tool:
        """A tool from a typed function: its name, its docstring, a schema from its arguments."""
        hints = get_type_hints(function)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for parameter in inspect.signature(function).parameters.values():
            json_type = _JSON_TYPES.get(hints.get(parameter.name, str), "string")
            properties[parameter.name] = {"type": json_type}
            if parameter.default is inspect.Parameter.empty:
                required.append(parameter.name)
        schema = {"type": "object", "properties": properties, "required": required}
        return cls(name=name or function.__name__, description=inspect.getdoc(function) or "",
                   parameters=schema, function=function, risk=risk)
