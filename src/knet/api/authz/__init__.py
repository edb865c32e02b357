"""Authorization, as kube-apiserver's `--authorization-mode` chain does it: each request becomes
`Attributes` (who, verb, what), and the authorizers in order (Node, RBAC, ...) each allow, deny
or have no opinion; the first decision wins, and no opinion from all of them is a denial."""

from knet.api.authz.attributes import ALLOW, DENY, NO_OPINION, Attributes, Authorizer, Decision

__all__ = ["ALLOW", "DENY", "NO_OPINION", "Attributes", "Authorizer", "Decision"]
