"""What `knet down` says it removed from the host (the e2e test_host_routes_cluster checks a real one)."""

from __future__ import annotations

from knet.cluster.down import removed_objects_line


def test_down_names_the_namespaces_and_links_it_removed():
    assert removed_objects_line(["knet-uw-controlplane", "knet-uw-node01"], ["kn5c51afbr", "kn5c51afv1"]) == (
        "removed network namespaces knet-uw-controlplane, knet-uw-node01 and links kn5c51afbr, kn5c51afv1")
    assert removed_objects_line([], ["kn5c51afbr"]) == "removed links kn5c51afbr"
    assert removed_objects_line([], []) == ""
