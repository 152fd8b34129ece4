"""Label and field selectors, with Kubernetes' syntax, semantics and messages."""
import pytest

from kubeling.resources import lookup
from kubeling.selectors import (FieldSelector, check_field_selector, convert_field_selector,
                                label_selector_from_dict, label_selector_from_set,
                                object_fields, parse_field_selector, parse_label_selector,
                                supported_field_labels)

LABELS = {"app": "web", "tier": "front", "env": "prod", "replicas": "3"}


@pytest.mark.parametrize("selector,expected", [
    ("", True),
    ("app=web", True),
    ("app==web", True),
    ("app=db", False),
    ("app!=db", True),
    ("missing!=x", True),
    ("app=web,tier=front", True),
    ("app=web,tier=back", False),
    ("env in (prod,staging)", True),
    ("env in (staging)", False),
    ("env notin (prod)", False),
    ("missing notin (prod)", True),
    ("missing in (prod)", False),
    ("app", True),
    ("missing", False),
    ("!missing", True),
    ("!app", False),
    ("replicas>2", True),
    ("replicas<3", False),
    ("app>2", False),  # not a number: no match
    ("missing>0", False),
    ("  app = web , env in ( prod ) ", True),
    ("empty=", False),
    ("x in (in,notin)", False),
])
def test_label_selector_matching(selector, expected):
    assert parse_label_selector(selector).matches(LABELS) is expected


def test_empty_value_and_key_with_prefix():
    sel = parse_label_selector("example.com/role in (,db),k=")
    assert sel.matches({"example.com/role": "", "k": ""})
    assert not sel.matches({"example.com/role": "web", "k": ""})


def test_string_form_is_sorted_and_normalised():
    sel = parse_label_selector("z notin (b,a),a==1,!c,b,n>5")
    assert str(sel) == "a==1,b,!c,n>5,z notin (a,b)"  # sorted by key, as Go does
    assert parse_label_selector("").empty and not sel.empty


@pytest.mark.parametrize("selector,message", [
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("a,", "found '', expected: identifier after ','"),
    (",a", "found ',', expected: !, identifier, or 'end of string'"),
    ("!a=b", "found '=', expected: ',' or 'end of string'"),
    ("a in b", "unable to parse requirement: found 'b' expected: '('"),
    ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"),
    ("a notin", "unable to parse requirement: found '' expected: '('"),
    ("a (b)", "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt"),
    ("a>b", "unable to parse requirement: values[0]: Invalid value: \"b\": "
            "for 'Gt', 'Lt' operators, the value must be an integer"),
    ("a=>b", "unable to parse requirement: found '>', expected: identifier"),
    ("a=~b", "unable to parse requirement: values[0][a]: Invalid value: \"~b\": a valid label must "
       "be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
       "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
       "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"),
])
def test_label_selector_syntax_errors(selector, message):
    with pytest.raises(ValueError) as err:
        parse_label_selector(selector)
    assert str(err.value) == message


def test_invalid_label_key_and_value_messages():
    with pytest.raises(ValueError) as err:
        parse_label_selector("a@b=c")
    assert str(err.value) == (
        "unable to parse requirement: <nil>: Invalid value: \"a@b\": name part must consist of "
        "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
    with pytest.raises(ValueError) as err:
        parse_label_selector("app=-web")
    assert str(err.value).startswith(
        "unable to parse requirement: values[0][app]: Invalid value: \"-web\": a valid label "
        "must be an empty string or consist of alphanumeric characters")
    with pytest.raises(ValueError, match="must be no more than 63 characters"):
        parse_label_selector("app=" + "a" * 64)
    with pytest.raises(ValueError, match="prefix part"):
        parse_label_selector("Bad_Prefix/app=x")
    with pytest.raises(ValueError, match="name part must be non-empty"):
        parse_label_selector("example.com/=x")


def test_non_string_input_is_refused():
    with pytest.raises(ValueError):
        parse_label_selector(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        parse_field_selector(3)  # type: ignore[arg-type]


def test_label_selector_object():
    sel = label_selector_from_dict({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "staging"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "tier", "operator": "Exists"},
            {"key": "zone", "operator": "NotIn", "values": ["b"]},
        ]})
    assert sel.matches(LABELS)
    assert not sel.matches({**LABELS, "canary": "1"})
    assert not sel.matches({**LABELS, "zone": "b"})
    assert not sel.matches({"app": "web", "env": "prod"})
    assert str(sel) == "app=web,!canary,env in (prod,staging),tier,zone notin (b)"


def test_nil_and_empty_label_selector_objects():
    assert not label_selector_from_dict(None).matches(LABELS)
    assert not label_selector_from_dict(None).empty
    assert label_selector_from_dict({}).matches({})
    assert label_selector_from_dict({}).empty


@pytest.mark.parametrize("bad,message", [
    ({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
     '"Gt" is not a valid label selector operator'),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
     "for 'in', 'notin' operators, values set can't be empty"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     "values set must be empty for exists and does not exist"),
    ({"matchLabels": {"a": "b c"}}, "a valid label must be an empty string"),
    ({"matchLabels": {"a": 1}}, "must be a string"),
    ({"matchLabels": "app=web"}, "matchLabels must be an object"),
    ({"matchExpressions": [None]}, r"matchExpressions\[0\] must be an object"),
    ("app=web", "label selector must be an object"),
])
def test_invalid_label_selector_objects(bad, message):
    with pytest.raises(ValueError, match=message):
        label_selector_from_dict(bad)


def test_selector_from_set_for_services():
    sel = label_selector_from_set({"app": "web", "tier": "front"})
    assert sel.matches(LABELS) and not sel.matches({"app": "web"})
    assert label_selector_from_set({}).empty and label_selector_from_set(None).empty


def test_matching_odd_labels_does_not_raise():
    assert parse_label_selector("!a").matches(None)
    assert not parse_label_selector("a").matches(["a"])


def test_field_selector_parsing_and_matching():
    sel = parse_field_selector("spec.nodeName=node-1,status.phase!=Failed,metadata.name==web")
    assert [(r.field, r.operator, r.value) for r in sel.requirements] == [
        ("metadata.name", "==", "web"), ("spec.nodeName", "=", "node-1"),
        ("status.phase", "!=", "Failed")]
    fields = {"metadata.name": "web", "spec.nodeName": "node-1", "status.phase": "Running"}
    assert sel.matches(fields)
    assert not sel.matches({**fields, "status.phase": "Failed"})
    assert sel.requires_exact_match("spec.nodeName") == "node-1"
    assert sel.requires_exact_match("status.phase") is None
    # A missing field reads as "": `spec.nodeName=` selects unscheduled pods.
    assert parse_field_selector("spec.nodeName=").matches({"metadata.name": "x"})
    assert parse_field_selector("").empty and parse_field_selector("").matches({})
    assert parse_field_selector(",a=b,").requirements[0].value == "b"


def test_field_selector_escapes():
    sel = parse_field_selector(r"metadata.name=a\,b\=c\\d")
    assert sel.requirements[0].value == "a,b=c\\d"
    assert str(sel) == r"metadata.name=a\,b\=c\\d"


@pytest.mark.parametrize("selector,message", [
    ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
    ("a=b=c", "invalid field selector: unescaped character in value: 61"),
    (r"a=b\x", r"invalid field selector: invalid escape sequence: \x"),
    ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
])
def test_field_selector_errors(selector, message):
    with pytest.raises(ValueError) as err:
        parse_field_selector(selector)
    assert str(err.value) == message


def test_pod_fields():
    pod = {"metadata": {"name": "web", "namespace": "default"},
           "spec": {"nodeName": "node-1", "restartPolicy": "Always", "hostNetwork": True,
                    "schedulerName": "default-scheduler", "serviceAccountName": "default"},
           "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.9"}],
                      "nominatedNodeName": "node-2"}}
    assert object_fields(lookup("pods"), pod) == {
        "metadata.name": "web", "metadata.namespace": "default", "spec.nodeName": "node-1",
        "spec.restartPolicy": "Always", "spec.schedulerName": "default-scheduler",
        "spec.serviceAccountName": "default", "spec.hostNetwork": "true",
        "status.phase": "Running", "status.podIP": "10.0.0.9",
        "status.nominatedNodeName": "node-2"}


def test_event_node_namespace_service_fields():
    event = {"metadata": {"name": "e1", "namespace": "default"}, "reason": "Pulled",
             "type": "Normal", "reportingComponent": "kubelet",
             "source": {"component": "kubelet", "host": "node-1"},
             "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web",
                                "uid": "u1", "apiVersion": "v1", "resourceVersion": "7",
                                "fieldPath": "spec.containers{c}"}}
    fields = object_fields(lookup("events"), event)
    assert fields["involvedObject.name"] == "web" and fields["involvedObject.uid"] == "u1"
    assert fields["source"] == "kubelet" and fields["reason"] == "Pulled"
    assert parse_field_selector(
        "involvedObject.kind=Pod,involvedObject.name=web,involvedObject.namespace=default"
    ).matches(fields)

    node = {"metadata": {"name": "node-1"}, "spec": {"unschedulable": True}}
    assert object_fields(lookup("nodes"), node) == {"metadata.name": "node-1",
                                                    "spec.unschedulable": "true"}
    assert object_fields(lookup("nodes"), {"metadata": {"name": "n"}})["spec.unschedulable"] \
        == "false"
    ns = {"metadata": {"name": "kube-system"}, "status": {"phase": "Active"}}
    assert object_fields(lookup("namespaces"), ns) == {"metadata.name": "kube-system",
                                                       "status.phase": "Active"}
    svc = {"metadata": {"name": "web", "namespace": "d"},
           "spec": {"clusterIP": "None", "type": "ClusterIP"}}
    assert object_fields(lookup("services"), svc)["spec.clusterIP"] == "None"
    assert object_fields(lookup("configmaps"), {"metadata": {"name": "c", "namespace": "d"}}) \
        == {"metadata.name": "c", "metadata.namespace": "d"}


@pytest.mark.parametrize("broken", [None, [], {"metadata": 1, "spec": "x", "status": None},
                                    {"status": {"podIPs": "x"}, "involvedObject": 5}])
def test_object_fields_of_odd_objects(broken):
    for plural in ("pods", "events", "nodes", "namespaces", "services", "leases"):
        fields = object_fields(lookup(plural), broken)
        assert fields["metadata.name"] == ""
        assert all(isinstance(v, str) for v in fields.values())


def test_field_label_support_per_kind():
    check_field_selector(lookup("pods"), parse_field_selector("spec.nodeName=n,status.podIP=x"))
    check_field_selector(lookup("events"), parse_field_selector("involvedObject.uid=u"))
    check_field_selector(lookup("leases"), parse_field_selector("metadata.namespace=kube-node-lease"))
    for plural, selector, bad in [
        ("pods", "spec.containers=x", "spec.containers"),
        ("nodes", "metadata.namespace=x", "metadata.namespace"),
        ("configmaps", "data.a=1", "data.a"),
        ("namespaces", "spec.finalizers=x", "spec.finalizers"),
    ]:
        with pytest.raises(ValueError) as err:
            check_field_selector(lookup(plural), parse_field_selector(selector))
        assert str(err.value) == f"field label not supported: {bad}"
    assert "spec.unschedulable" in supported_field_labels(lookup("nodes"))


def test_legacy_spec_host_is_spec_node_name():
    sel = convert_field_selector(lookup("pods"), parse_field_selector("spec.host=node-1"))
    assert sel == FieldSelector(parse_field_selector("spec.nodeName=node-1").requirements)
