"""The apiserver's side of the shared selector grammar (knet.selectors): a selector that does
not parse is a 400 BadRequest with upstream's message, as kube-apiserver answers
`?labelSelector=` and `?fieldSelector=`."""

from __future__ import annotations

from knet import selectors
from knet.api.errors import bad_request
from knet.selectors import FieldSelector, LabelSelector, SelectorError

__all__ = ["FieldSelector", "LabelSelector", "from_label_selector_object", "parse_field_selector",
           "parse_label_selector"]


def parse_label_selector(text: str | None) -> LabelSelector:
    try:
        return selectors.parse_label_selector(text)
    except SelectorError as exc:
        raise bad_request(str(exc)) from None


def parse_field_selector(text: str | None, supported: frozenset[str]) -> FieldSelector:
    try:
        return selectors.parse_field_selector(text, supported)
    except SelectorError as exc:
        raise bad_request(str(exc)) from None


def from_label_selector_object(sel: dict | None) -> LabelSelector | None:
    """metav1.LabelSelector as LabelSelectorAsSelector: None selects nothing, an empty one
    everything; an unknown operator raises SelectorError (validation reports it as 422)."""
    return selectors.selector_requirements(sel)
