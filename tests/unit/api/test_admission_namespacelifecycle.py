"""NamespaceLifecycle: default, kube-system and kube-public cannot be deleted (by anyone)."""

from __future__ import annotations

import pytest

from knet.api.admission.namespacelifecycle import namespace_lifecycle
from knet.api.errors import ApiError
from knet.api.resources import namespaces
from knet.api.rest import AdmissionRequest


def _delete(name: str) -> AdmissionRequest:
    return AdmissionRequest("DELETE", namespaces.RESOURCE, "", name, None, {"metadata": {"name": name}}, None, None, False)


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
def test_system_namespaces_cannot_be_deleted(name):
    with pytest.raises(ApiError) as err:
        namespace_lifecycle(_delete(name))
    assert err.value.code == 403
    assert err.value.message == f'namespaces "{name}" is forbidden: this namespace may not be deleted'


def test_other_namespaces_can_be_deleted():
    namespace_lifecycle(_delete("kube-node-lease"))
    namespace_lifecycle(_delete("team-a"))
