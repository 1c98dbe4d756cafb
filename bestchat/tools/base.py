"""What a tool is: a name, a description, a JSON schema for its arguments, the function that
runs it, a risk level that decides whether a person must approve each call, a timeout and
whether it needs the network.

A typed function with a docstring is a complete tool: :meth:`Tool.from_function` derives the
rest from its signature (``:param name: text`` lines of the docstring describe the
arguments), and the :func:`tool` decorator sets its risk, timeout and network need. The
function runs in a sandboxed child process (:mod:`bestchat.tools.sandbox`), so it must be a
module-level function of an importable module, take the JSON arguments as keyword arguments
and return a JSON value.

Arguments are checked against the schema (:meth:`Tool.validate`) before anything runs; what
fails goes back to the model as the call's error.
"""

from __future__ import annotations

import inspect
import re
import types
from dataclasses import dataclass
from typing import Any, Callable, Literal, Union, get_args, get_origin, get_type_hints

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

Risk = Literal["low", "medium", "high"]
RISKS: tuple[Risk, ...] = ("low", "medium", "high")
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PARAM_DOC_RE = re.compile(r"^\s*:param\s+(\w+):\s*(.+)$", re.MULTILINE)

_JSON_TYPES: dict[Any, str] = {
    str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object",
}


class ToolArgumentsInvalid(ValueError):
    """The model's arguments do not match the tool's schema; the message says where."""


@dataclass(frozen=True)
class Tool:
    """A tool as registered by a plugin; ``plugin`` is stamped by the registry.

    ``timeout`` (seconds) shortens the server's ``TOOL_TIMEOUT`` for this tool; ``network``
    says the tool needs the network (every other tool runs with none)."""

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any]
    risk: Risk = "low"
    plugin: str | None = None
    timeout: float | None = None
    network: bool = False

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.name):
            raise ValueError(f"tool name {self.name!r} must match {NAME_RE.pattern}")
        if self.risk not in RISKS:
            raise ValueError(f"tool {self.name!r}: risk must be one of {', '.join(RISKS)}")
        if not callable(self.function):
            raise TypeError(f"tool {self.name!r}: function is not callable")
        if self.timeout is not None and not (isinstance(self.timeout, (int, float)) and self.timeout > 0):
            raise ValueError(f"tool {self.name!r}: timeout must be a positive number of seconds")
        if not isinstance(self.parameters, dict) or self.parameters.get("type", "object") != "object":
            raise ValueError(f"tool {self.name!r}: parameters must be a JSON schema of type object")
        try:
            Draft202012Validator.check_schema(self.parameters)
        except SchemaError as error:
            raise ValueError(f"tool {self.name!r}: parameters are not a valid JSON schema: {error.message}") from None

    def validate(self, arguments: Any) -> dict[str, Any]:
        """``arguments`` if they match the schema, else :class:`ToolArgumentsInvalid`."""
        if not isinstance(arguments, dict):
            raise ToolArgumentsInvalid("arguments must be a JSON object")
        error = next(iter(sorted(Draft202012Validator(self.parameters).iter_errors(arguments),
                                 key=lambda e: list(e.absolute_path))), None)
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path)
            raise ToolArgumentsInvalid(f"{where + ': ' if where else ''}{error.message}")
        return arguments

    def schema(self) -> dict[str, Any]:
        """The OpenAI-style function description offered to a model."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}

    @classmethod
    def from_function(cls, function: Callable[..., Any], *, name: str | None = None,
                      risk: Risk | None = None, timeout: float | None = None,
                      network: bool | None = None, description: str | None = None) -> Tool:
        """A tool from a typed function: its name, its docstring, a schema from its arguments.
        Settings not given come from the :func:`tool` decorator, if the function has one."""
        marks = getattr(function, "__bestchat_tool__", {})
        doc = inspect.getdoc(function) or ""
        return cls(name=name or marks.get("name") or function.__name__,
                   description=description or PARAM_DOC_RE.sub("", doc).strip(),
                   parameters=schema_of(function, dict(PARAM_DOC_RE.findall(doc))), function=function,
                   risk=risk or marks.get("risk", "low"),
                   timeout=timeout if timeout is not None else marks.get("timeout"),
                   network=network if network is not None else marks.get("network", False))


def tool(*, risk: Risk = "low", timeout: float | None = None, network: bool = False,
         name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a function's tool settings; ``register(function)`` then makes it a :class:`Tool`
    with them. The function itself is returned unchanged."""

    def mark(function: Callable[..., Any]) -> Callable[..., Any]:
        function.__bestchat_tool__ = {"risk": risk, "timeout": timeout, "network": network, "name": name}
        return function

    return mark


def schema_of(function: Callable[..., Any], descriptions: dict[str, str] | None = None) -> dict[str, Any]:
    """The JSON schema of ``function``'s keyword arguments, from its type hints."""
    hints = get_type_hints(function)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        prop = json_type(hints.get(parameter.name, str))
        if descriptions and parameter.name in descriptions:
            prop["description"] = descriptions[parameter.name].strip()
        properties[parameter.name] = prop
        if parameter.default is inspect.Parameter.empty:
            required.append(parameter.name)
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def json_type(hint: Any) -> dict[str, Any]:
    """The JSON schema of one type hint (str, int, float, bool, list[X], dict, Literal, X | None)."""
    origin = get_origin(hint)
    if origin is Literal:
        return {"enum": list(get_args(hint))}
    if origin in (Union, types.UnionType):
        options = [arg for arg in get_args(hint) if arg is not type(None)]
        return json_type(options[0]) if len(options) == 1 else {"anyOf": [json_type(a) for a in options]}
    if origin is list:
        args = get_args(hint)
        return {"type": "array", "items": json_type(args[0])} if args else {"type": "array"}
    if origin is dict:
        return {"type": "object"}
    return {"type": _JSON_TYPES.get(hint, "string")}
