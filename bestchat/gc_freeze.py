"""Keeps the garbage collector's full passes short in long-running server processes.

A full (generation 2) collection walks every tracked object, and a web or worker process holds
many from its start alone (modules, the app, SQLAlchemy's metadata, Celery, kombu). A pass over
them stalls every stream that process relays. :func:`freeze_startup_objects`, called by the
server entry points (``wsgi.py``, ``celery_worker.py``) once the process is ready, moves what
exists then into the collector's permanent generation (``gc.freeze``), so full passes walk only
what came later. Those objects live for the whole process anyway; reference cycles among them
that become garbage later are not collected (there are none to speak of: they are the program).

A worker warms the providers in use up before it freezes (``Provider.warm_up``: the litellm
plugin imports litellm there), so a heavy library's objects are frozen with the rest. A library
imported later, while serving (litellm at the first answer of a connection added since the
start, or in embedded mode), is frozen by :func:`freeze_new_imports`, which the generation task
calls after each job: when modules were imported since the last freeze it freezes again,
without collecting first (that collection would be the very pass to avoid). It does nothing in
a process that did not freeze at start (tests, scripts), where freezing would keep whatever
garbage cycles exist at that moment for good. The measurements are in ``benchmarks/README.md``.
"""

from __future__ import annotations

import gc
import sys

# How many modules were loaded at the last freeze (None: this process never froze).
_modules_at_freeze: int | None = None


def freeze_startup_objects() -> int:
    """Collect once, then exempt every object alive now from later collections (and let
    :func:`freeze_new_imports` do the same later). Returns how many objects are frozen."""
    global _modules_at_freeze
    gc.collect()
    _modules_at_freeze = len(sys.modules)
    gc.freeze()
    return gc.get_freeze_count()



def freeze_new_imports() -> bool:
    """In a process that froze at start: when modules were imported since the last freeze,
    exempt every object alive now from later collections. Costs one length compare otherwise.
    Returns whether it froze."""
    global _modules_at_freeze
    if _modules_at_freeze is None or len(sys.modules) <= _modules_at_freeze:
        return False
    _modules_at_freeze = len(sys.modules)
    gc.freeze()
    return True
