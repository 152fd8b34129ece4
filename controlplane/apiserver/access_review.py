"""authorization.k8s.io/v1 reviews: asked of the authorizer, never stored.

- SelfSubjectAccessReview: may I do this? (`kubectl auth can-i`)
- SubjectAccessReview: may this user (and groups) do this? (for those allowed to ask)
- SelfSubjectRulesReview: what may I do in this namespace? (`kubectl auth can-i --list`)
- authentication.k8s.io SelfSubjectReview: who am I? (`kubectl auth whoami`)
Each answers 201 with the request echoed and a status, as pkg/registry/authorization does.
"""
from __future__ import annotations

import copy
from typing import Any

from kubeling import errors
from kubeling.resources import Resource

from . import authn
from .authz import NODE_RULES, Attributes, Authorizer

GROUP = "authorization.k8s.io"
GROUPS = (GROUP, "authentication.k8s.io")


def _invalid(kind: str, field: str, value: Any, detail: str) -> errors.ApiError:
    return errors.invalid(kind, "", [errors.invalid_value(field, value, detail)], GROUP)


def _attributes(kind: str, spec: dict[str, Any]) -> Attributes:
    res, non = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if res is not None and non is not None:
        raise _invalid(kind, "spec.nonResourceAttributes", non,
                       "cannot be specified in combination with resourceAttributes")
    if res is None and non is None:
        raise _invalid(kind, "spec.resourceAttributes", None,
                       "exactly one of nonResourceAttributes or resourceAttributes must be specified")
    if res is not None:
        if not isinstance(res, dict):
            raise _invalid(kind, "spec.resourceAttributes", res, "must be an object")
        return Attributes(str(res.get("verb") or ""), str(res.get("group") or ""), str(res.get("resource") or ""),
                          str(res.get("subresource") or ""), str(res.get("namespace") or ""),
                          str(res.get("name") or ""))
    if not isinstance(non, dict):
        raise _invalid(kind, "spec.nonResourceAttributes", non, "must be an object")
    return Attributes(str(non.get("verb") or ""), path=str(non.get("path") or ""))


def _answer(body: dict[str, Any], res: Resource, status: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(body)
    out["kind"], out["apiVersion"] = res.kind, res.api_version
    meta = out.get("metadata") if isinstance(out.get("metadata"), dict) else {}
    meta.setdefault("creationTimestamp", None)
    out["metadata"] = meta
    out["status"] = status
    return out


def _access_status(authorizer: Authorizer, user: authn.UserInfo, a: Attributes) -> dict[str, Any]:
    decision = authorizer.authorize(user, a)
    status: dict[str, Any] = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return status


def review(authorizer: Authorizer, res: Resource, body: Any, requester: authn.UserInfo) -> dict[str, Any]:
    """The answered review (res is one of the authorization.k8s.io resources)."""
    if not isinstance(body, dict):
        raise errors.bad_request(f"the body of the request must be a {res.kind} object")
    spec = body.get("spec")
    if not isinstance(spec, dict):
        spec = {}
    if res.plural == "selfsubjectaccessreviews":
        return _answer(body, res, _access_status(authorizer, requester, _attributes(res.kind, spec)))
    if res.plural == "subjectaccessreviews":
        user, groups = spec.get("user") or "", spec.get("groups") or []
        if not user and not groups:
            raise _invalid(res.kind, "spec.user", user, "at least one of user or group must be specified")
        if not isinstance(user, str) or not isinstance(groups, list):
            raise _invalid(res.kind, "spec", spec, "user must be a string and groups a list of strings")
        subject = authn.UserInfo(user, str(spec.get("uid") or ""), tuple(str(g) for g in groups))
        return _answer(body, res, _access_status(authorizer, subject, _attributes(res.kind, spec)))
    if res.plural == "selfsubjectreviews":  # authentication.k8s.io: who am I?
        info: dict[str, Any] = {"username": requester.name, "groups": list(requester.groups)}
        if requester.uid:
            info["uid"] = requester.uid
        return _answer(body, res, {"userInfo": info})
    if res.plural == "selfsubjectrulesreviews":
        return _answer(body, res, rules_status(authorizer, requester, str(spec.get("namespace") or "")))
    raise errors.method_not_allowed(f"{res.plural} are not served")


def rules_status(authorizer: Authorizer, user: authn.UserInfo, namespace: str) -> dict[str, Any]:
    """A SubjectRulesReviewStatus: the chain's rules for the user in the namespace."""
    if authn.MASTERS in user.groups:
        rules = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, {"verbs": ["*"], "nonResourceURLs": ["*"]}]
        problems: list[str] = []
    else:
        rules, problems = (authorizer.rbac.rules_for(user.name, user.groups, namespace)
                           if authorizer.rbac is not None else ([], []))
        if user.node_name is not None:
            rules = list(NODE_RULES) + rules
    resource_rules, non_resource_rules = [], []
    for r in rules:
        if r.get("nonResourceURLs"):
            non_resource_rules.append({"verbs": list(r.get("verbs") or []),
                                       "nonResourceURLs": list(r["nonResourceURLs"])})
        else:
            entry = {"verbs": list(r.get("verbs") or []), "apiGroups": list(r.get("apiGroups") or []),
                     "resources": list(r.get("resources") or [])}
            if r.get("resourceNames"):
                entry["resourceNames"] = list(r["resourceNames"])
            resource_rules.append(entry)
    status: dict[str, Any] = {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
                              "incomplete": bool(problems) or user.node_name is not None}
    if problems:
        status["evaluationError"] = ", ".join(problems)
    return status
