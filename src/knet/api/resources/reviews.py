"""Create-only review kinds that are answered, never stored: authentication.k8s.io/v1
SelfSubjectReview (`kubectl auth whoami`) and TokenReview; authorization.k8s.io/v1
SubjectAccessReview, SelfSubjectAccessReview, LocalSubjectAccessReview (`kubectl auth can-i`)
and SelfSubjectRulesReview (`kubectl auth can-i --list`), answered by the apiserver's own
authorizer chain (`--authorization-mode`)."""

from __future__ import annotations

from knet.api.auth import User
from knet.api.authz import DENY, Attributes
from knet.api.errors import FieldError, invalid, invalid_object
from knet.api.registry import ResourceType

CREATE_ONLY = ("create",)


def _user_info(user) -> dict:
    info: dict = {"username": user.name}
    if user.uid:
        info["uid"] = user.uid
    info["groups"] = list(user.groups)
    if user.extra:
        info["extra"] = {k: list(v) if isinstance(v, list | tuple) else [v] for k, v in user.extra.items()}
    return info


def self_subject_review(body: dict, user, server, ns: str | None) -> dict:
    return {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None}, "status": {"userInfo": _user_info(user)}}


def token_review(body: dict, user, server, ns: str | None = None) -> dict:
    """TokenReview as kube-apiserver answers it (pkg/registry/authentication/tokenreview): the
    same checks as a request's bearer token, for spec.audiences (default: the apiserver's).
    `server` is the ApiServer (or its Authenticator itself)."""
    from knet.api import errors

    auth = getattr(server, "auth", server)
    spec = (body or {}).get("spec") or {}
    token = spec.get("token", "")
    requested = spec.get("audiences") or None
    if not token or not isinstance(token, str):
        raise errors.bad_request("token is required for TokenReview in authentication")
    if requested is not None and not (isinstance(requested, list) and all(isinstance(a, str) for a in requested)):
        raise errors.bad_request("spec.audiences must be a list of strings")
    result = auth.review(token, requested)
    status: dict = {"authenticated": result.user is not None}
    if result.user is not None:
        status["user"] = _user_info(result.user)
        status["audiences"] = list(result.audiences)
    else:
        status["user"] = {}
        status["error"] = f"[{result.error}]"
    return {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}


def _attributes(kind: str, spec: dict, user: User) -> Attributes:
    """The Attributes an access review asks about (authorizationutil.ResourceAttributesFrom)."""
    errs: list[FieldError] = []
    res, nonres = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if (res is None) == (nonres is None):
        errs.append(invalid("spec.resourceAttributes", res,
                            "exactly one of nonResourceAttributes or resourceAttributes must be specified"))
    for part in (res, nonres):
        if part is not None and not isinstance(part, dict):
            errs.append(invalid("spec", None, "attributes must be objects"))
    if errs:
        raise invalid_object(kind, "authorization.k8s.io", "", errs)
    if nonres is not None:
        return Attributes(user, str(nonres.get("verb", "")), resource_request=False, path=str(nonres.get("path", "")))
    return Attributes(user, str(res.get("verb", "")), namespace=str(res.get("namespace", "")),
                      api_group=str(res.get("group", "")), api_version=str(res.get("version", "")),
                      resource=str(res.get("resource", "")), subresource=str(res.get("subresource", "")),
                      name=str(res.get("name", "")))


def _review_status(server, attrs: Attributes) -> dict:
    decision = server.authorizer.authorize(attrs)
    status: dict = {"allowed": decision.allowed}
    if decision.decision == DENY:
        status["denied"] = True
    if decision.reason:
        status["reason"] = decision.reason
    return status


def _answer(kind: str, body: dict, spec: dict, status: dict) -> dict:
    meta = dict((body or {}).get("metadata") or {})
    meta.setdefault("creationTimestamp", None)
    return {"kind": kind, "apiVersion": "authorization.k8s.io/v1", "metadata": meta, "spec": spec, "status": status}


def _subject(kind: str, spec: dict) -> User:
    """The user a (Local)SubjectAccessReview asks about: spec.user/uid/groups/extra, at least
    one of user and groups (upstream's validation)."""
    if not spec.get("user") and not spec.get("groups"):
        raise invalid_object(kind, "authorization.k8s.io", "", [
            invalid("spec.user", "", "at least one of user or group must be specified")])
    return User(str(spec.get("user", "")), str(spec.get("uid", "")), tuple(spec.get("groups") or ()),
                dict(spec.get("extra") or {}))


def subject_access_review(body: dict, user, server, ns: str | None) -> dict:
    spec = dict((body or {}).get("spec") or {})
    subject = _subject("SubjectAccessReview", spec)
    return _answer("SubjectAccessReview", body, spec, _review_status(server, _attributes("SubjectAccessReview", spec, subject)))


def local_subject_access_review(body: dict, user, server, ns: str | None) -> dict:
    spec = dict((body or {}).get("spec") or {})
    res = spec.get("resourceAttributes")
    if isinstance(res, dict) and res.get("namespace", "") != ns:
        raise invalid_object("LocalSubjectAccessReview", "authorization.k8s.io", "", [
            invalid("spec.resourceAttributes.namespace", res.get("namespace", ""),
                    "must match metadata.namespace")])
    subject = _subject("LocalSubjectAccessReview", spec)
    answer = _answer("LocalSubjectAccessReview", body, spec,
                     _review_status(server, _attributes("LocalSubjectAccessReview", spec, subject)))
    answer["metadata"]["namespace"] = ns
    return answer


def self_subject_access_review(body: dict, user, server, ns: str | None) -> dict:
    spec = dict((body or {}).get("spec") or {})
    return _answer("SelfSubjectAccessReview", body, spec,
                   _review_status(server, _attributes("SelfSubjectAccessReview", spec, user)))


def self_subject_rules_review(body: dict, user, server, ns: str | None) -> dict:
    """What the requester may do in spec.namespace: the union of what every authorizer of the
    chain that can list rules (RBAC, Node) says, as upstream's RulesFor."""
    spec = dict((body or {}).get("spec") or {})
    namespace = spec.get("namespace", "")
    if not isinstance(namespace, str):
        raise invalid_object("SelfSubjectRulesReview", "authorization.k8s.io", "", [
            invalid("spec.namespace", namespace, "must be a string")])
    resource_rules: list[dict] = []
    non_resource_rules: list[dict] = []
    incomplete = False
    errors: list[str] = []
    for authorizer in server.authorizer.authorizers:
        rules_for = getattr(authorizer, "rules_for", None)
        if rules_for is None:
            continue
        res, nonres, partial, error = rules_for(user, namespace)
        resource_rules += res
        non_resource_rules += nonres
        incomplete = incomplete or partial
        if error:
            errors.append(error)
    status: dict = {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": incomplete}
    if errors:
        status["evaluationError"] = "; ".join(errors)
    return {"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}


SELF_SUBJECT_REVIEW = ResourceType(group="authentication.k8s.io", version="v1", resource="selfsubjectreviews",
                                   kind="SelfSubjectReview", namespaced=False, verbs=CREATE_ONLY,
                                   model="V1SelfSubjectReview")
TOKEN_REVIEW = ResourceType(group="authentication.k8s.io", version="v1", resource="tokenreviews", kind="TokenReview",
                            namespaced=False, verbs=CREATE_ONLY, model="V1TokenReview")
LOCAL_SUBJECT_ACCESS_REVIEW = ResourceType(group="authorization.k8s.io", version="v1",
                                           resource="localsubjectaccessreviews", kind="LocalSubjectAccessReview",
                                           namespaced=True, verbs=CREATE_ONLY, model="V1LocalSubjectAccessReview")
SELF_SUBJECT_ACCESS_REVIEW = ResourceType(group="authorization.k8s.io", version="v1",
                                          resource="selfsubjectaccessreviews", kind="SelfSubjectAccessReview",
                                          namespaced=False, verbs=CREATE_ONLY, model="V1SelfSubjectAccessReview")
SELF_SUBJECT_RULES_REVIEW = ResourceType(group="authorization.k8s.io", version="v1",
                                         resource="selfsubjectrulesreviews", kind="SelfSubjectRulesReview",
                                         namespaced=False, verbs=CREATE_ONLY, model="V1SelfSubjectRulesReview")
SUBJECT_ACCESS_REVIEW = ResourceType(group="authorization.k8s.io", version="v1", resource="subjectaccessreviews",
                                     kind="SubjectAccessReview", namespaced=False, verbs=CREATE_ONLY,
                                     model="V1SubjectAccessReview")

HANDLERS = {
    ("authentication.k8s.io", "selfsubjectreviews"): self_subject_review,
    ("authentication.k8s.io", "tokenreviews"): token_review,
    ("authorization.k8s.io", "localsubjectaccessreviews"): local_subject_access_review,
    ("authorization.k8s.io", "selfsubjectaccessreviews"): self_subject_access_review,
    ("authorization.k8s.io", "selfsubjectrulesreviews"): self_subject_rules_review,
    ("authorization.k8s.io", "subjectaccessreviews"): subject_access_review,
}
RESOURCES = (SELF_SUBJECT_REVIEW, TOKEN_REVIEW, LOCAL_SUBJECT_ACCESS_REVIEW, SELF_SUBJECT_ACCESS_REVIEW,
             SELF_SUBJECT_RULES_REVIEW, SUBJECT_ACCESS_REVIEW)
