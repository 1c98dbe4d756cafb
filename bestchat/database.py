"""Database engine setup.

SQLite gets WAL, a busy timeout and enforced foreign keys, and its file is readable by its
owner only (0600, like the secrets under ``instance/``; SQLite gives its ``-wal`` and ``-shm``
files the database file's mode). A server database gets a liveness
check of pooled connections that were idle for ``DATABASE_PING_IDLE_SECONDS`` or more, when
they are checked out (a connection the database dropped, after a restart for instance, is
replaced before anyone uses it). SQLAlchemy's ``pool_pre_ping`` would check every checkout:
one more round trip for every request and every generation job, for connections that were in
use a moment before. The writes that must not fail for a restart (a generation's claim, an
answer's end) run through :func:`once_more_if_dropped`.

Two pools per process. The main one (``DATABASE_POOL_SIZE`` + ``DATABASE_MAX_OVERFLOW``) serves
the ORM session, which holds its connection until the request or job ends its transaction.
The side engine (:func:`side_engine`, ``DATABASE_SIDE_POOL_SIZE`` +
``DATABASE_SIDE_MAX_OVERFLOW``, the same database) serves the single statements run beside a
session that holds a main connection: the message store's writes and a generation's claim
(:func:`run_prepared`, on the main pool when the session holds nothing), and the reads kept
out of a caller's transaction (:func:`read_beside`, always: it also runs in the admission's
greenlet, for a request that holds a main connection and waits for it). Whoever holds a side
connection runs one statement and gives it back, waiting for nothing else meanwhile; so a
request that holds a main connection and needs one more never waits on another such
request: with one pool, a burst of more requests than the pool holds could leave each
holding one connection and waiting for a second until the pool's timeout.

Server processes (``wsgi.py``, ``celery_worker.py``) call :func:`warm_pool` at start: it opens
both pools' connections in the background, so a burst of sends after a quiet start does not
open a new PostgreSQL connection (a new backend process) on the path of every first token.

:func:`run_prepared` runs the message store's single statements on PostgreSQL
(:mod:`bestchat.store.postgresql`).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, TypeVar

import gevent
from flask import Flask
from psycopg.rows import namedtuple_row
from sqlalchemy import event, exc
from sqlalchemy.engine import make_url

from bestchat.extensions import db
from bestchat.settings import SIDE_BIND

T = TypeVar("T")

log = logging.getLogger(__name__)


def init_database(app: Flask, db) -> None:
    import bestchat.models  # noqa: F401 - register every table on the metadata

    db.init_app(app)
    with app.app_context():
        engines = set(db.engines.values())
        if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
            _private_sqlite_file(app.config["SQLALCHEMY_DATABASE_URI"])
            for engine in engines:
                event.listen(engine, "connect", _sqlite_pragmas(app.config["SQLITE_BUSY_TIMEOUT_MS"]))
        else:
            for engine in engines:
                _ping_when_idle(engine, float(app.config["DATABASE_PING_IDLE_SECONDS"]))


def side_engine():
    """The current app's side engine (see the module docstring); the main engine for an
    in-memory SQLite database, which has no other."""
    return db.engines.get(SIDE_BIND) or db.engine


def read_beside(statement, parameters: dict[str, Any] | None = None) -> list[Any]:
    """The rows of the read ``statement``, on a side connection given back at once: the
    caller's session is left as it was (a streaming generation's holds no connection, and
    does not start holding one for this), and a caller that holds a main connection waits
    for no second one."""
    with side_engine().connect() as connection:
        return connection.execute(statement, parameters or {}).all()


def _private_sqlite_file(url: str) -> None:
    """Create the SQLite database file with mode 0600 before SQLite does (it would use 0644),
    and take group and other access away from an existing one."""
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o600)
    except OSError as error:  # e.g. a read-only file owned by someone else: SQLite will say more
        log.warning("could not make %s private: %s", path, error)


def _ping_when_idle(engine, idle_seconds: float) -> None:
    """Ping a pooled connection at checkout when it has been idle ``idle_seconds`` or more;
    a failed ping makes the pool replace it (``DisconnectionError``: SQLAlchemy's documented
    pessimistic disconnect handling)."""

    def since_now(_dbapi_connection, record, *_args) -> None:
        record.info["idle_since"] = time.monotonic()

    def on_checkout(dbapi_connection, record, _proxy) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # noqa: BLE001 - any failure: replace the connection
            raise exc.DisconnectionError() from error

    event.listen(engine, "connect", since_now)
    event.listen(engine, "checkin", since_now)
    event.listen(engine, "checkout", on_checkout)


def warm_pool(app: Flask) -> gevent.Greenlet | None:
    """Open ``DATABASE_POOL_SIZE`` pooled connections, and ``DATABASE_SIDE_POOL_SIZE`` side
    ones, in a background greenlet and give them back to their pools (server databases only;
    a failure is only logged: connections then open on demand, as without it)."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return None

    def warm() -> None:
        with app.app_context():
            opened = []
            try:
                for _ in range(int(app.config["DATABASE_POOL_SIZE"])):
                    opened.append(db.engine.connect())
                if side_engine() is not db.engine:
                    for _ in range(int(app.config["DATABASE_SIDE_POOL_SIZE"])):
                        opened.append(side_engine().connect())
            except Exception as error:  # noqa: BLE001 - an optimisation only
                log.warning("could not open the database pool ahead (%s)", error)
            finally:
                for connection in opened:
                    connection.close()

    return gevent.spawn(warm)


def run_prepared(statement: str, parameters: dict[str, Any]) -> list[Any]:
    """Run one PostgreSQL ``statement`` on a pooled connection in autocommit mode, atomic on
    its own, and return its rows (named tuples). For the message store's single statements
    (an exchange's, a generation's claim), so it skips what they do not need:

    - no ORM session and no SQLAlchemy ``Connection`` (with its execution context and result
      objects): the pool's DBAPI connection itself;
    - prepared from its first execution on each connection (psycopg's ``prepare=True``), not
      after its fifth (``prepare_threshold``): until then the database parses and plans it
      every time.

    The pool's checkout still applies (the liveness ping after an idle while). Errors are
    raised as SQLAlchemy raises them (:class:`sqlalchemy.exc.DBAPIError`); a lost connection
    is invalidated with the pool's others, as SQLAlchemy does it, so that
    :func:`once_more_if_dropped` gets a fresh one."""
    # The main pool unless the session holds one of its connections (the pool is larger and
    # warm: a burst of sends or claims finds its connections open).
    scoped = db.session
    engine = side_engine() if scoped.registry.has() and scoped().in_transaction() else db.engine
    dialect = engine.dialect
    pooled = engine.raw_connection()
    driver = pooled.driver_connection
    try:
        driver.autocommit = True
        with driver.cursor(row_factory=namedtuple_row) as cursor:
            cursor.execute(statement, parameters, prepare=True)
            rows = cursor.fetchall() if cursor.description else []
        driver.autocommit = False
        return rows
    except dialect.loaded_dbapi.Error as error:
        lost = dialect.is_disconnect(error, driver, None)
        if lost:
            engine.pool._invalidate(pooled, error)  # (SQLAlchemy's own handling of a disconnect)
        else:
            try:  # back to what the pool's other users expect
                driver.autocommit = False
            except dialect.loaded_dbapi.Error:
                pooled.invalidate(error)
        raise exc.DBAPIError.instance(statement, parameters, error, dialect.loaded_dbapi.Error,
                                      connection_invalidated=lost, dialect=dialect) from error
    finally:
        pooled.close()


def once_more_if_dropped(run: Callable[[], T]) -> T:
    """``run()`` (its first statement, at least, must be its first of the transaction); if the
    connection it got had been dropped by the database while idle for less than
    ``DATABASE_PING_IDLE_SECONDS`` (a restart), roll back and run it once more: the pool has
    been invalidated by then, so it gets a fresh connection."""
    try:
        return run()
    except exc.DBAPIError as error:
        if not error.connection_invalidated:
            raise
        db.session.rollback()
        return run()


def _sqlite_pragmas(busy_timeout_ms: int):
    def on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return on_connect

