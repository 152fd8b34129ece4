"""The official `kubernetes` Python client against kubeling."""
from __future__ import annotations

import threading
import warnings

import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture
def core(tls_apiserver):
    from kubernetes import client, config
    api_client = config.new_client_from_config(config_file=str(tls_apiserver.kubeconfig))
    yield client.CoreV1Api(api_client)
    api_client.close()


def test_load_kube_config_and_version(tls_apiserver):
    from kubernetes import client, config
    config.load_kube_config(config_file=str(tls_apiserver.kubeconfig))
    assert client.VersionApi().get_code().git_version == "v1.33.0-kubeling"
    names = {r.name for r in client.CoreV1Api().get_api_resources().resources}
    assert {"pods", "pods/status", "services", "nodes"} <= names


def test_pods_and_services_crud_and_watch(core, kns):
    from kubernetes import client, watch
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning (unknown fields, decoding) fails the test
        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(name="py", labels={"app": "py"}),
            spec=client.V1PodSpec(containers=[client.V1Container(
                name="main", image="busybox", ports=[client.V1ContainerPort(container_port=80)])]))
        created = core.create_namespaced_pod(kns, pod)
        assert created.metadata.uid and created.status.phase == "Pending"
        assert created.spec.containers[0].ports[0].protocol == "TCP"  # defaulted by the server
        assert core.read_namespaced_pod("py", kns).metadata.labels == {"app": "py"}
        listed = core.list_namespaced_pod(kns, label_selector="app=py")
        assert [p.metadata.name for p in listed.items] == ["py"]
        svc = core.create_namespaced_service(kns, client.V1Service(
            metadata=client.V1ObjectMeta(name="py-svc"),
            spec=client.V1ServiceSpec(selector={"app": "py"},
                                      ports=[client.V1ServicePort(port=80, target_port=8080)])))
        assert svc.spec.cluster_ip and svc.spec.ports[0].target_port == 8080
        assert core.read_namespaced_service("py-svc", kns).spec.type == "ClusterIP"

        seen: list[tuple[str, str]] = []
        w = watch.Watch()
        deleter = threading.Timer(0.5, lambda: core.delete_namespaced_pod("py", kns))
        deleter.start()
        try:
            for event in w.stream(core.list_namespaced_pod, kns, timeout_seconds=10):
                assert isinstance(event["object"], client.V1Pod)
                seen.append((event["type"], event["object"].metadata.name))
                if event["type"] == "DELETED":
                    w.stop()
        finally:
            deleter.join()
        assert seen[0] == ("ADDED", "py") and seen[-1] == ("DELETED", "py")
        deleted = core.delete_namespaced_service("py-svc", kns)
        assert deleted.metadata.name == "py-svc"
    for read in (lambda: core.read_namespaced_pod("py", kns), lambda: core.read_namespaced_service("py-svc", kns)):
        with pytest.raises(client.ApiException) as info:
            read()
        assert info.value.status == 404
