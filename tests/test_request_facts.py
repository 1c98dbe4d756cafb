"""The request's facts handed to the domain by the adapter (bestchat.request_facts): set for the
request being served, absent outside one."""

from __future__ import annotations

from bestchat import request_facts
from bestchat.request_facts import NO_REQUEST, RequestFacts


def test_outside_a_request_there_are_no_facts():
    assert request_facts.current() is NO_REQUEST and NO_REQUEST == RequestFacts(ip=None)


def test_a_request_sees_its_own_facts_and_leaves_none_behind(app):
    seen: list[RequestFacts] = []

    def facts_view():
        seen.append(request_facts.current())
        return ""

    app.add_url_rule("/test-request-facts", "test_request_facts", facts_view)
    http = app.test_client()
    http.get("/test-request-facts", environ_overrides={"REMOTE_ADDR": "192.0.2.41"})
    assert request_facts.current() is NO_REQUEST
    http.get("/test-request-facts", environ_overrides={"REMOTE_ADDR": "198.51.100.42"})
    assert seen == [RequestFacts(ip="192.0.2.41"), RequestFacts(ip="198.51.100.42")]
    assert request_facts.current() is NO_REQUEST
