"""Validating admission plugins for `ObjectService.admission` (kube-apiserver's
`--enable-admission-plugins`): each is `plugin(AdmissionRequest) -> None` and raises ApiError to
refuse a write."""

from knet.api.admission.noderestriction import NodeRestriction

__all__ = ["NodeRestriction"]
