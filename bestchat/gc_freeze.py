"""Keeps the garbage collector's full passes short in long-running server processes.

A full (generation 2) collection walks every tracked object, and a web or worker process holds
many from its start alone (modules, the app, SQLAlchemy's metadata, Celery, kombu). A pass over
them stalls every stream that process relays. :func:`freeze_startup_objects`, called by the
server entry points (``wsgi.py``, ``celery_worker.py``) once the process is ready, moves what
exists then into the collector's permanent generation (``gc.freeze``), so full passes walk only
what came later. Those objects live for the whole process anyway; reference cycles among them
that become garbage later are not collected (there are none to speak of: they are the program).

The same holds for a heavy library imported later, while serving (litellm, imported by a
worker's first litellm answer). :func:`freeze_imported_objects` is called right after such an
import; it does nothing in a process that did not freeze at start (tests, scripts), where
freezing would keep whatever garbage cycles exist at that moment for good. The measurements are
in ``benchmarks/README.md``.
"""

from __future__ import annotations

import gc

_serving = False


def freeze_startup_objects() -> int:
    """Collect once, then exempt every object alive now from later collections (and let
    :func:`freeze_imported_objects` do the same later). Returns how many objects are frozen."""
    global _serving
    _serving = True
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def freeze_imported_objects() -> None:
    """In a server process: exempt every object alive now (a heavy import just made) from later
    collections, without collecting first (that collection would be the very pass to avoid)."""
    if _serving:
        gc.freeze()
