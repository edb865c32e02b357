"""The clusterrole-aggregation controller over the informer: an aggregated ClusterRole follows
the roles its selectors match as they are created, changed, relabelled and deleted."""

from __future__ import annotations

from knet.controllers.clusterroleaggregation import API_VERSION, ClusterRoleAggregationController


def _rule(verb: str, resource: str) -> dict:
    return {"verbs": [verb], "apiGroups": [""], "resources": [resource]}


def _role(name: str, labels: dict, rules: list) -> dict:
    return {"apiVersion": API_VERSION, "kind": "ClusterRole", "metadata": {"name": name, "labels": labels},
            "rules": rules}


async def test_aggregated_role_follows_its_sources(harness):
    api = harness.api
    api.seed(API_VERSION, "clusterroles", {
        "apiVersion": API_VERSION, "kind": "ClusterRole", "metadata": {"name": "monitoring"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"example.com/aggregate-to-monitoring": "true"}}]}})
    api.seed(API_VERSION, "clusterroles", _role("a", {"example.com/aggregate-to-monitoring": "true"},
                                                [_rule("get", "pods")]))
    api.seed(API_VERSION, "clusterroles", _role("other", {}, [_rule("delete", "nodes")]))
    ctrl = ClusterRoleAggregationController(api, harness.informers)
    await harness.start(ctrl)

    def rules():
        return next(o for o in api.objects(API_VERSION, "clusterroles") if o["metadata"]["name"] == "monitoring").get("rules")

    await harness.until(lambda: rules() == [_rule("get", "pods")])
    # A new labelled role adds its rules (sorted by role name, each rule once).
    await api.create(API_VERSION, "clusterroles", _role("b", {"example.com/aggregate-to-monitoring": "true"},
                                                        [_rule("get", "pods"), _rule("list", "services")]))
    await harness.until(lambda: rules() == [_rule("get", "pods"), _rule("list", "services")])
    # Relabelling a role away and deleting one take their rules out.
    a = next(o for o in api.objects(API_VERSION, "clusterroles") if o["metadata"]["name"] == "a")
    a["metadata"]["labels"] = {}
    await api.update(API_VERSION, "clusterroles", a)
    await harness.until(lambda: rules() == [_rule("get", "pods"), _rule("list", "services")])
    await api.delete(API_VERSION, "clusterroles", "b")
    await harness.until(lambda: rules() == [])
    # A changed rule in a source role is followed.
    await api.create(API_VERSION, "clusterroles", _role("c", {"example.com/aggregate-to-monitoring": "true"},
                                                        [_rule("watch", "endpoints")]))
    await harness.until(lambda: rules() == [_rule("watch", "endpoints")])
