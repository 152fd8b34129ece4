"""pods/exec, attach and portforward are authorized as `create`, whatever the method:
a WebSocket upgrade is a GET, and exec must never pass as a read."""
from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from controlplane.apiserver.app import request_attributes


@pytest.mark.parametrize("sub", ["exec", "attach", "portforward"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_connect_subresources_need_create(sub, method):
    req = make_mocked_request(method, f"/api/v1/namespaces/ns1/pods/web/{sub}?command=id&stdout=true")
    a = request_attributes(req)
    assert (a.verb, a.resource, a.subresource, a.namespace, a.name) == ("create", "pods", sub, "ns1", "web")


def test_pod_log_stays_a_read():
    a = request_attributes(make_mocked_request("GET", "/api/v1/namespaces/ns1/pods/web/log"))
    assert (a.verb, a.subresource) == ("get", "log")
