"""The access log line (``bestchat.accesslog``): gunicorn's line for any log format, with
credentials taken out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger, SafeAtoms

from bestchat.accesslog import RedactingLogger
from bestchat.redaction import REDACTED

EVERY_ATOM = ('%(h)s %(l)s %(u)s "%(r)s" %(s)s %(b)s %(B)s "%(f)s" "%(a)s" %(m)s %(U)s %(q)s %(H)s %(T)s '
              '%(D)s %(M)s %(L)s %(p)s %({X-Forwarded-For}i)s %({content-type}o)s %({path_info}e)s '
              '%({missing}i)s %({Authorization}i)s %({cookie}i)s')


class Response:
    status, sent = "200 OK", 123
    headers = [("Content-Type", "application/json"), ("Content-Length", "123")]


ENVIRON = {"REQUEST_METHOD": "GET", "RAW_URI": "/ws?x=1", "SERVER_PROTOCOL": "HTTP/1.1",
           "QUERY_STRING": "x=1", "PATH_INFO": "/ws", "REMOTE_ADDR": "10.0.0.1",
           "HTTP_USER_AGENT": 'agent "quoted"', "HTTP_REFERER": "http://site/page",
           "HTTP_AUTHORIZATION": "Basic dXNlcjpwdw==", "wsgi.url_scheme": "http"}
HEADERS = [("HOST", "site"), ("X-FORWARDED-FOR", "9.9.9.9"), ("AUTHORIZATION", "Basic dXNlcjpwdw=="),
           ("COOKIE", "session=abc")]


def line(logger: Logger, environ: dict, request_time: timedelta) -> str:
    text = logger.cfg.access_log_format % SafeAtoms(logger.atoms(Response(), HEADERS, environ, request_time))
    return text.replace(logger.now(), "[now]")


@pytest.mark.parametrize("log_format", [None, EVERY_ATOM])
def test_the_line_is_gunicorns_for_every_atom_of_the_format(log_format):
    config = Config()
    if log_format:
        config.set("access_log_format", log_format)
    took = timedelta(seconds=1, microseconds=2345)
    ours = line(RedactingLogger(config), ENVIRON, took)
    theirs = line(Logger(config), ENVIRON, took)
    secret_free = theirs.replace("Basic dXNlcjpwdw==", REDACTED).replace("session=abc", REDACTED)
    assert ours == secret_free
    assert '10.0.0.1 - user' in ours and '"GET /ws?x=1 HTTP/1.1" 200 123' in ours


def test_credentials_in_the_request_line_and_query_are_redacted():
    config = Config()
    config.set("access_log_format", EVERY_ATOM)
    environ = {**ENVIRON, "RAW_URI": "/ws?token=bc_SECRET1&x=1", "QUERY_STRING": "ticket=wst_SECRET2",
               "HTTP_REFERER": "http://h/?access_token=SECRET3"}
    text = line(RedactingLogger(config), environ, timedelta(seconds=0))
    assert "SECRET" not in text and "dXNlcjpwdw" not in text and "session=abc" not in text
    assert f'"GET /ws?token={REDACTED}&x=1 HTTP/1.1"' in text
