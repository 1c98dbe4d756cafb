"""Public names imported on first use (PEP 562), for the modules that gather an API from
several internal ones: :mod:`bestchat.plugin_api` and :mod:`bestchat.testing`. Importing such a
module costs nothing; each name costs the import of the module it lives in, once."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Mapping


def lazy_exports(module_name: str, sources: Mapping[str, tuple[str, str]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of the module ``module_name``, whose public names
    come from ``sources`` (public name -> (module, attribute there)); a name once imported
    becomes a plain attribute of the module."""

    def __getattr__(name: str) -> Any:
        try:
            module, attribute = sources[name]
        except KeyError:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), attribute)
        setattr(sys.modules[module_name], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[module_name])) | set(sources))

    return __getattr__, __dir__
