"""Keeps the garbage collector's full passes short in long-running server processes.

A full (generation 2) collection walks every tracked object, and a web or worker process holds
many from its start alone (modules, the app, SQLAlchemy's metadata, Celery, kombu). A pass over
them stalls every stream that process relays. :func:`freeze_startup_objects`, called by the
server entry points (``wsgi.py``, ``celery_worker.py``) once the process is ready, moves what
exists then into the collector's permanent generation (``gc.freeze``), so full passes walk only
what came later. Those objects live for the whole process anyway; reference cycles among them
that become garbage later are not collected (there are none to speak of: they are the program).

A worker warms its providers up before it freezes (``Provider.warm_up``: the litellm plugin
imports litellm there), so a heavy library's objects are frozen with the rest. A process that
imports one later (embedded mode, without a worker: litellm at its first answer) leaves those
objects to the collector. The measurements are in ``benchmarks/README.md``.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> int:
    """Collect once, then exempt every object alive now from later collections. Returns how
    many objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()

