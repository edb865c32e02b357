"""Create-only review kinds that are answered, never stored: authentication.k8s.io/v1
SelfSubjectReview (`kubectl auth whoami`) and TokenReview, authorization.k8s.io/v1
SelfSubjectAccessReview and SubjectAccessReview (`kubectl auth can-i`). knet has no RBAC:
every authenticated user may do everything, and the reviews say so."""

from __future__ import annotations

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


def self_subject_review(body: dict, user, auth) -> dict:
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


def access_review(kind: str):
    def review(body: dict, user, auth) -> dict:
        return {"kind": kind, "apiVersion": "authorization.k8s.io/v1", "metadata": {"creationTimestamp": None},
                "spec": (body or {}).get("spec") or {},
                "status": {"allowed": True, "reason": "knet authorizes every authenticated user (no RBAC)"}}
    return review


SELF_SUBJECT_REVIEW = ResourceType(group="authentication.k8s.io", version="v1", resource="selfsubjectreviews",
                                   kind="SelfSubjectReview", namespaced=False, verbs=CREATE_ONLY,
                                   model="V1SelfSubjectReview")
TOKEN_REVIEW = ResourceType(group="authentication.k8s.io", version="v1", resource="tokenreviews", kind="TokenReview",
                            namespaced=False, verbs=CREATE_ONLY, model="V1TokenReview")
SELF_SUBJECT_ACCESS_REVIEW = ResourceType(group="authorization.k8s.io", version="v1",
                                          resource="selfsubjectaccessreviews", kind="SelfSubjectAccessReview",
                                          namespaced=False, verbs=CREATE_ONLY, model="V1SelfSubjectAccessReview")
SUBJECT_ACCESS_REVIEW = ResourceType(group="authorization.k8s.io", version="v1", resource="subjectaccessreviews",
                                     kind="SubjectAccessReview", namespaced=False, verbs=CREATE_ONLY,
                                     model="V1SubjectAccessReview")

HANDLERS = {
    ("authentication.k8s.io", "selfsubjectreviews"): self_subject_review,
    ("authentication.k8s.io", "tokenreviews"): token_review,
    ("authorization.k8s.io", "selfsubjectaccessreviews"): access_review("SelfSubjectAccessReview"),
    ("authorization.k8s.io", "subjectaccessreviews"): access_review("SubjectAccessReview"),
}
RESOURCES = (SELF_SUBJECT_REVIEW, TOKEN_REVIEW, SELF_SUBJECT_ACCESS_REVIEW, SUBJECT_ACCESS_REVIEW)
