"""The clusterrole-aggregation controller (pkg/controller/clusterroleaggregation): keeps the
rules of every ClusterRole with an aggregationRule equal to the union of the rules of the
ClusterRoles its selectors match (knet.api.authz.aggregation.aggregate_rules).

Any ClusterRole event may change what an aggregated role should hold (a new labelled role, a
changed rule, a label removed, a role deleted), so every event queues every aggregated role,
as upstream's enqueue does; each sync reads only the informer's cache."""

from __future__ import annotations

from typing import Any

from knet.api.authz.aggregation import aggregate_rules, rules_equal
from knet.client import Api
from knet.controllers.base import Controller, InformerFactory

Obj = dict[str, Any]
API_VERSION = "rbac.authorization.k8s.io/v1"


class ClusterRoleAggregationController(Controller):
    name = "clusterrole-aggregation"
    workers = 1  # upstream runs few workers; aggregated roles are a handful

    def __init__(self, api: Api, informers: InformerFactory) -> None:
        super().__init__()
        self.api = api
        self.cluster_roles = informers.get(API_VERSION, "clusterroles")
        self.cluster_roles.add_handler(lambda o: self._enqueue_aggregated(), lambda o, n: self._enqueue_aggregated(),
                                       lambda o: self._enqueue_aggregated())

    def _aggregated_names(self) -> list[str]:
        return [r["metadata"]["name"] for r in self.cluster_roles.list() if r.get("aggregationRule") is not None]

    def _enqueue_aggregated(self) -> None:
        for name in self._aggregated_names():
            self.queue.add(name)

    def initial_keys(self) -> list[str]:
        return self._aggregated_names()

    async def sync_key(self, key: str) -> None:
        role = self.cluster_roles.get(key)
        if role is None:
            return
        rules = aggregate_rules(role, self.cluster_roles.list())
        if rules is None or rules_equal(rules, role.get("rules")):
            return
        await self.api.update(API_VERSION, "clusterroles", {**role, "rules": rules},
                              field_manager="clusterrole-aggregation-controller")
