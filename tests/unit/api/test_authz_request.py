"""The 403 wording, the authorizer chain and impersonation (request verbs: test_requestinfo.py).
The 403 cases are upstream's TestForbidden (k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors_test.go)."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from knet.api.auth import User
from knet.api.authz import ALLOW, DENY, NO_OPINION, Attributes, Decision
from knet.api.authz.impersonation import impersonate
from knet.api.authz.request import forbidden
from knet.api.authz.union import AlwaysAllow, PrivilegedGroups, Union
from knet.api.errors import ApiError

U = User("NAME", "", ("system:authenticated",))


@pytest.mark.parametrize("attrs,message,details", [
    (Attributes(U, "GET", resource_request=False, path="/whatever"),
     'forbidden: User "NAME" cannot GET path "/whatever"', {}),
    (Attributes(U, "get", resource="pod"),
     'pod is forbidden: User "NAME" cannot get resource "pod" in API group "" at the cluster scope', {"kind": "pod"}),
    (Attributes(U, "get", resource="pod", name="mypod"),
     'pod "mypod" is forbidden: User "NAME" cannot get resource "pod" in API group "" at the cluster scope',
     {"name": "mypod", "kind": "pod"}),
    (Attributes(U, "get", namespace="ns", resource="pod", api_group="v2"),
     'pod.v2 is forbidden: User "NAME" cannot get resource "pod" in API group "v2" in the namespace "ns"',
     {"group": "v2", "kind": "pod"}),
    (Attributes(U, "create", namespace="default", resource="pods", subresource="exec", name="web"),
     'pods "web" is forbidden: User "NAME" cannot create resource "pods/exec" in API group "" in the namespace '
     '"default"', {"name": "web", "kind": "pods"}),
])
def test_forbidden_wording(attrs, message, details):
    status = forbidden(attrs).status()
    assert status["code"] == 403 and status["reason"] == "Forbidden"
    assert status["message"] == message
    assert status["details"] == details


def test_forbidden_appends_the_authorizers_reason():
    attrs = Attributes(User("system:node:n1", "", ("system:nodes",)), "get", namespace="d", resource="secrets", name="s")
    assert forbidden(attrs, "no relationship found between node 'n1' and this object").message.endswith(
        "in the namespace \"d\": no relationship found between node 'n1' and this object")


class Fixed:
    def __init__(self, decision: str, reason: str = "") -> None:
        self.decision = Decision(decision, reason)

    def authorize(self, attrs: Attributes) -> Decision:
        return self.decision


def test_union_first_decision_wins_and_no_opinion_denies():
    a = Attributes(U, "get", resource="pods")
    assert Union([Fixed(NO_OPINION), Fixed(ALLOW)]).authorize(a).allowed
    assert not Union([Fixed(DENY), Fixed(ALLOW)]).authorize(a).allowed
    out = Union([Fixed(NO_OPINION, "node says no"), Fixed(NO_OPINION)]).authorize(a)
    assert out.decision == NO_OPINION and out.reason == "node says no"
    assert AlwaysAllow().authorize(a).allowed


def test_system_masters_may_do_everything():
    chain = Union([PrivilegedGroups(), Fixed(NO_OPINION)])
    admin = User("kubernetes-admin", "", ("system:masters", "system:authenticated"))
    assert chain.authorize(Attributes(admin, "delete", resource="nodes")).allowed
    assert not chain.authorize(Attributes(U, "delete", resource="nodes")).allowed


class Grants:
    """Allows exactly the (resource, name) pairs given, for the verb impersonate."""

    def __init__(self, *allowed: tuple[str, str]) -> None:
        self.allowed = set(allowed)
        self.asked: list[Attributes] = []

    def __call__(self, attrs: Attributes) -> Decision:
        self.asked.append(attrs)
        ok = attrs.verb == "impersonate" and (attrs.resource, attrs.name) in self.allowed
        return Decision(ALLOW if ok else NO_OPINION)


def test_impersonating_a_user_needs_impersonate_on_users():
    headers = CIMultiDict({"Impersonate-User": "bob"})
    with pytest.raises(ApiError) as err:
        impersonate(headers, U, Grants())
    assert err.value.code == 403
    assert err.value.message == ('users "bob" is forbidden: User "NAME" cannot impersonate resource "users" in API '
                                 'group "" at the cluster scope')
    who = impersonate(headers, U, Grants(("users", "bob")))
    assert who.name == "bob" and who.groups == ("system:authenticated",)


def test_impersonating_groups_checks_each_group():
    headers = CIMultiDict([("Impersonate-User", "bob"), ("Impersonate-Group", "devs"), ("Impersonate-Group", "ops")])
    with pytest.raises(ApiError) as err:
        impersonate(headers, U, Grants(("users", "bob"), ("groups", "devs")))
    assert 'groups "ops" is forbidden' in err.value.message
    who = impersonate(headers, U, Grants(("users", "bob"), ("groups", "devs"), ("groups", "ops")))
    assert who.groups == ("devs", "ops", "system:authenticated")


def test_impersonating_a_service_account_checks_serviceaccounts():
    grants = Grants(("serviceaccounts", "sa"))
    who = impersonate(CIMultiDict({"Impersonate-User": "system:serviceaccount:ns1:sa"}), U, grants)
    assert grants.asked[0].namespace == "ns1" and grants.asked[0].resource == "serviceaccounts"
    assert who.groups == ("system:serviceaccounts", "system:serviceaccounts:ns1", "system:authenticated")


def test_impersonating_anonymous_is_unauthenticated():
    who = impersonate(CIMultiDict({"Impersonate-User": "system:anonymous"}), U, Grants(("users", "system:anonymous")))
    assert who.groups == ("system:unauthenticated",)


def test_groups_without_a_user_is_a_bad_request():
    with pytest.raises(ApiError) as err:
        impersonate(CIMultiDict({"Impersonate-Group": "devs"}), U, Grants())
    assert err.value.code == 400


def test_extra_and_uid_need_their_own_right():
    headers = CIMultiDict({"Impersonate-User": "bob", "Impersonate-Extra-Scopes": "view", "Impersonate-Uid": "42"})
    with pytest.raises(ApiError) as err:
        impersonate(headers, U, Grants(("users", "bob")))
    assert "userextras" in err.value.message
    grants = Grants(("users", "bob"), ("userextras", "view"), ("uids", "42"))
    who = impersonate(headers, U, grants)
    assert who.uid == "42" and who.extra == {"scopes": ["view"]}
    assert [a.subresource for a in grants.asked if a.resource == "userextras"] == ["scopes"]
