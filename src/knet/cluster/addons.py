"""The cluster add-ons kubeadm installs, as wire dicts (kubeadm `phases/addons/{proxy,dns}`).

Pure: each function takes the resolved ClusterConfig and returns API objects; `knet up` creates
them. Field values follow kubeadm v1.29's manifests so `kubectl get -o yaml` and `kubectl
describe` show what an operator sees on a kubeadm cluster.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import yaml

from knet.cluster.config import ClusterConfig
from knet.ingress import manifests as ingress_manifests

KUBE_SYSTEM = "kube-system"
KUBE_PROXY_IMAGE_REPO = "registry.k8s.io/kube-proxy"
COREDNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.11.1"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

# kubeadm marshals the KubeProxyConfiguration with every field present (Go zero values) and keys
# sorted, which is what `kubectl -n kube-system get cm kube-proxy -o yaml` shows on a kubeadm cluster.
_KUBE_PROXY_CONFIG = """\
apiVersion: kubeproxy.config.k8s.io/v1alpha1
bindAddress: 0.0.0.0
bindAddressHardFail: false
clientConnection:
  acceptContentTypes: ""
  burst: 0
  contentType: ""
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
  qps: 0
clusterCIDR: {cluster_cidr}
configSyncPeriod: 0s
conntrack:
  maxPerCore: null
  min: null
  tcpBeLiberal: false
  tcpCloseWaitTimeout: null
  tcpEstablishedTimeout: null
  udpStreamTimeout: 0s
  udpTimeout: 0s
detectLocal:
  bridgeInterface: ""
  interfaceNamePrefix: ""
detectLocalMode: ""
enableProfiling: false
healthzBindAddress: ""
hostnameOverride: ""
iptables:
  localhostNodePorts: null
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
ipvs:
  excludeCIDRs: null
  minSyncPeriod: 0s
  scheduler: ""
  strictARP: false
  syncPeriod: 0s
  tcpFinTimeout: 0s
  tcpTimeout: 0s
  udpTimeout: 0s
kind: KubeProxyConfiguration
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
  verbosity: 0
metricsBindAddress: ""
mode: {mode}
nftables:
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
nodePortAddresses: null
oomScoreAdj: null
portRange: ""
showHiddenMetricsForVersion: ""
winkernel:
  enableDSR: false
  forwardHealthCheckVip: false
  networkName: ""
  rootHnsEndpointName: ""
  sourceVip: \"\""""

_KUBE_PROXY_KUBECONFIG = f"""\
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: {SA_DIR}/ca.crt
    server: {{server}}
  name: default
contexts:
- context:
    cluster: default
    namespace: default
    user: default
  name: default
current-context: default
users:
- name: default
  user:
    tokenFile: {SA_DIR}/token"""

# kubeadm's default Corefile (cmd/kubeadm/app/phases/addons/dns/manifests.go), upstream resolver
# /etc/resolv.conf.
_COREFILE = """\
.:53 {{
    errors
    health {{
       lameduck 5s
    }}
    ready
    kubernetes {dns_domain} in-addr.arpa ip6.arpa {{
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }}
    prometheus :9153
    forward . /etc/resolv.conf {{
       max_concurrent 1000
    }}
    cache 30
    loop
    reload
    loadbalance
}}
"""


def kube_proxy_config_text(config: ClusterConfig) -> str:
    mode = f'"{config.proxy_mode}"' if not config.proxy_mode else config.proxy_mode
    return _KUBE_PROXY_CONFIG.format(cluster_cidr=config.pod_subnet, mode=mode)


def kube_proxy_kubeconfig_text(config: ClusterConfig) -> str:
    # kubeadm points kube-proxy at the control-plane endpoint; `controlplane` resolves to its IP in
    # every node's and pod's /etc/hosts.
    return _KUBE_PROXY_KUBECONFIG.format(server=f"https://{config.control_plane.name}:{config.api_server_port}")


def kube_proxy_configmap(config: ClusterConfig) -> dict[str, Any]:
    conf = kube_proxy_config_text(config)
    # kubeadm marks the component config it wrote with a hash of it (to detect user edits).
    digest = hashlib.sha256(conf.encode()).hexdigest()
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "kube-proxy", "namespace": KUBE_SYSTEM, "labels": {"app": "kube-proxy"},
            "annotations": {"kubeadm.kubernetes.io/component-config.hash": f"sha256:{digest}"},
        },
        "data": {
            "config.conf": conf,
            "kubeconfig.conf": kube_proxy_kubeconfig_text(config),
        },
    }


def service_account(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": KUBE_SYSTEM}}


def _host_network_daemonset(name: str, labels: dict[str, str], service_account: str,
                            *containers: dict[str, Any], volumes: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    """A node agent's DaemonSet as kubeadm writes kube-proxy's: one privileged hostNetwork pod
    per node, every taint tolerated, system-node-critical, with kube-proxy's ConfigMap, the
    xtables lock and /lib/modules mounted (each container gets the mounts, its own
    `volumeMounts` after them, and NODE_NAME); `volumes` are the pod's besides those."""
    mounts = [
        {"mountPath": "/var/lib/kube-proxy", "name": "kube-proxy"},
        {"mountPath": "/run/xtables.lock", "name": "xtables-lock", "readOnly": False},
        {"mountPath": "/lib/modules", "name": "lib-modules", "readOnly": True},
    ]
    built = [{
        **container,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {"privileged": True},
        "volumeMounts": [*mounts, *container.get("volumeMounts", [])],
        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}],
    } for container in containers]
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": KUBE_SYSTEM, "labels": dict(labels)},
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "containers": built,
                    "hostNetwork": True,
                    "serviceAccountName": service_account,
                    "volumes": [
                        {"name": "kube-proxy", "configMap": {"name": "kube-proxy"}},
                        {"name": "xtables-lock", "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}},
                        {"name": "lib-modules", "hostPath": {"path": "/lib/modules"}},
                        *volumes,
                    ],
                    "tolerations": [{"operator": "Exists"}],
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                },
            },
        },
    }


def kube_proxy_daemonset(config: ClusterConfig) -> dict[str, Any]:
    return _host_network_daemonset("kube-proxy", {"k8s-app": "kube-proxy"}, "kube-proxy", {
        "name": "kube-proxy",
        "image": f"{KUBE_PROXY_IMAGE_REPO}:{config.kubernetes_version}",
        "command": [
            "/usr/local/bin/kube-proxy",
            "--config=/var/lib/kube-proxy/config.conf",
            "--hostname-override=$(NODE_NAME)",
        ],
    })


# knet's own network add-on (issue #14): one pod per node, as weave-net or kindnet on kubeadm.
NETWORK_ADDON = "knet-net"
NETWORK_ADDON_IMAGE_REPO = "ghcr.io/knet/knet-net"
CNI_CONTAINER = "cni"
NETPOL_CONTAINER = "netpol"
NETPOL_METRICS_PORT = 9809
CNI_BIN_DIR = "/usr/lib/cni"  # the kubelet's --cni-bin-dir (a node shows it as /opt/cni/bin too)
NODE_CNI_CONF_DIR = "/etc/cni/net.d"         # on a knet node: STATE/nodes/NODE/cni/net.d
NODE_CNI_IPAM_DIR = "/var/lib/cni/networks"  # on a knet node: STATE/nodes/NODE/cni/ipam


def network_addon_daemonset(config: ClusterConfig, nodes_dir: str | None = None) -> dict[str, Any]:
    """The network add-on. Its `cni` container writes the node's CNI config from the node's
    podCIDR and keeps the routes to the other nodes' podCIDRs; its `netpol` container enforces
    NetworkPolicies in the node's namespace, in the framework of the node's kube-proxy mode (read
    from the kube-proxy ConfigMap it mounts, whose kubeconfig.conf also points both at the API
    server with the add-on's own ServiceAccount token).

    The `cni` container mounts the node's kubeadm paths, as flannel's and Calico's do:
    /etc/cni/net.d (the kubelet's CNI config dir) and /var/lib/cni/networks (host-local's leases).
    A knet node shows its state dir's `nodes/NODE/cni/{net.d,ipam}` there (knet.cluster.nodefs),
    the dirs the kubelet's flags name. `nodes_dir` is unused (the state dir's nodes/, which the
    add-on mounted before nodes had these paths); kept for callers."""
    del nodes_dir
    image = f"{NETWORK_ADDON_IMAGE_REPO}:{config.kubernetes_version}"
    cni = {
        "name": CNI_CONTAINER,
        "image": image,
        "command": [
            "/usr/local/bin/knet-cni-agent",
            f"--ipalloc-range={config.pod_subnet}",
            "--hostname-override=$(NODE_NAME)",
            "--kubeconfig=/var/lib/kube-proxy/kubeconfig.conf",
            f"--cni-conf-dir={NODE_CNI_CONF_DIR}",
            f"--ipam-data-dir={NODE_CNI_IPAM_DIR}",
            f"--cni-bin-dir={CNI_BIN_DIR}",
            # The node answers ARP for its share of the LoadBalancer addresses (knet.cniagent.l2announce).
            *([f"--load-balancer-pool={config.load_balancer_pool}"] if config.load_balancer_pool else []),
        ],
        "volumeMounts": [{"mountPath": NODE_CNI_CONF_DIR, "name": "cni-conf"},
                         {"mountPath": NODE_CNI_IPAM_DIR, "name": "cni-ipam"}],
    }
    netpol = {
        "name": NETPOL_CONTAINER,
        "image": image,
        "command": [
            "/usr/local/bin/knet-netpol",
            "--kube-proxy-config=/var/lib/kube-proxy/config.conf",
            "--kubeconfig=/var/lib/kube-proxy/kubeconfig.conf",
            "--hostname-override=$(NODE_NAME)",
            f"--metrics-bind-address=0.0.0.0:{NETPOL_METRICS_PORT}",
        ],
        "ports": [{"name": "metrics", "containerPort": NETPOL_METRICS_PORT, "protocol": "TCP"}],
    }
    return _host_network_daemonset(NETWORK_ADDON, {"k8s-app": NETWORK_ADDON}, NETWORK_ADDON, cni, netpol,
                                   volumes=({"name": "cni-conf", "hostPath": {"path": NODE_CNI_CONF_DIR,
                                                                              "type": "Directory"}},
                                            {"name": "cni-ipam", "hostPath": {"path": NODE_CNI_IPAM_DIR,
                                                                              "type": "DirectoryOrCreate"}}))


def coredns_configmap(config: ClusterConfig) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "coredns", "namespace": KUBE_SYSTEM},
        "data": {"Corefile": _COREFILE.format(dns_domain=config.dns_domain)},
    }


def coredns_deployment(config: ClusterConfig, replicas: int = 2) -> dict[str, Any]:
    labels = {"k8s-app": "kube-dns"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": KUBE_SYSTEM, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "priorityClassName": "system-cluster-critical",
                    "serviceAccountName": "coredns",
                    "affinity": {
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "weight": 100,
                                    "podAffinityTerm": {
                                        "labelSelector": {
                                            "matchExpressions": [
                                                {"key": "k8s-app", "operator": "In", "values": ["kube-dns"]}
                                            ]
                                        },
                                        "topologyKey": "kubernetes.io/hostname",
                                    },
                                }
                            ]
                        }
                    },
                    "tolerations": [
                        {"key": "CriticalAddonsOnly", "operator": "Exists"},
                        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                    ],
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": [
                        {
                            "name": "coredns",
                            "image": COREDNS_IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "resources": {
                                "limits": {"memory": "170Mi"},
                                "requests": {"cpu": "100m", "memory": "70Mi"},
                            },
                            "args": ["-conf", "/etc/coredns/Corefile"],
                            "volumeMounts": [
                                {"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": True}
                            ],
                            "ports": [
                                {"containerPort": 53, "name": "dns", "protocol": "UDP"},
                                {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
                                {"containerPort": 9153, "name": "metrics", "protocol": "TCP"},
                            ],
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                                "readOnlyRootFilesystem": True,
                            },
                            # kubeadm leaves periodSeconds etc. to the apiserver's defaults; they are
                            # written out here so the object reads the same whoever defaults it.
                            "livenessProbe": {
                                "httpGet": {"path": "/health", "port": 8080, "scheme": "HTTP"},
                                "initialDelaySeconds": 60,
                                "timeoutSeconds": 5,
                                "periodSeconds": 10,
                                "successThreshold": 1,
                                "failureThreshold": 5,
                            },
                            "readinessProbe": {
                                "httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"},
                                "timeoutSeconds": 1,
                                "periodSeconds": 10,
                                "successThreshold": 1,
                                "failureThreshold": 3,
                            },
                        }
                    ],
                    "dnsPolicy": "Default",
                    "volumes": [
                        {
                            "name": "config-volume",
                            "configMap": {"name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]},
                        }
                    ],
                },
            },
        },
    }


def kube_dns_service(config: ClusterConfig) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kube-dns",
            "namespace": KUBE_SYSTEM,
            "labels": {
                "k8s-app": "kube-dns",
                "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "CoreDNS",
            },
            "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"},
        },
        "spec": {
            "clusterIP": config.dns_service_ip,
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
            ],
            "selector": {"k8s-app": "kube-dns"},
        },
    }


def kubeadm_config_configmap(config: ClusterConfig, certificates_dir: str) -> dict[str, Any]:
    """kube-system/kubeadm-config: the ClusterConfiguration the cluster was made from."""
    cluster_configuration = {
        "apiServer": {"extraArgs": {"authorization-mode": "Node,RBAC"}, "timeoutForControlPlane": "4m0s"},
        "apiVersion": "kubeadm.k8s.io/v1beta3",
        "certificatesDir": certificates_dir,
        "clusterName": "kubernetes",
        "controlPlaneEndpoint": f"{config.control_plane.name}:{config.api_server_port}",
        "controllerManager": {"extraArgs": dict(config.controller_manager_extra_args)}
        if config.controller_manager_extra_args else {},
        "dns": {},
        "imageRepository": "registry.k8s.io",
        "kind": "ClusterConfiguration",
        "kubernetesVersion": config.kubernetes_version,
        "networking": {"dnsDomain": config.dns_domain, "podSubnet": config.pod_subnet,
                       "serviceSubnet": config.service_subnet},
        "scheduler": {"extraArgs": dict(config.scheduler_extra_args)} if config.scheduler_extra_args else {},
    }
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kubeadm-config", "namespace": KUBE_SYSTEM},
        "data": {"ClusterConfiguration": yaml.safe_dump(cluster_configuration, sort_keys=True)},
    }


def kubelet_configuration(config: ClusterConfig) -> dict[str, Any]:
    """The KubeletConfiguration of every node (also each node's /var/lib/kubelet/config.yaml)."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"}},
        "authorization": {"mode": "Webhook"},
        # what knet's kubelet does (it refuses systemd: knet.node.kubeletconfig); kubeadm's says systemd
        "cgroupDriver": "cgroupfs",
        "clusterDNS": [config.dns_service_ip],
        "clusterDomain": config.dns_domain,
        "kind": "KubeletConfiguration",
        "staticPodPath": "/etc/kubernetes/manifests",
    }


def kubelet_config_configmap(config: ClusterConfig) -> dict[str, Any]:
    """kube-system/kubelet-config: the KubeletConfiguration shared by the nodes' agents."""
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kubelet-config", "namespace": KUBE_SYSTEM},
        "data": {"kubelet": yaml.safe_dump(kubelet_configuration(config), sort_keys=True)},
    }


def cluster_info_configmap(config: ClusterConfig, ca_pem: bytes) -> dict[str, Any]:
    """kube-public/cluster-info: how to reach the cluster (CA and server), readable by anyone."""
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"cluster": {"certificate-authority-data": base64.b64encode(ca_pem).decode(),
                                  "server": f"https://{config.control_plane.name}:{config.api_server_port}"},
                      "name": ""}],
        "contexts": None, "current-context": "", "preferences": {}, "users": None,
    }
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cluster-info", "namespace": "kube-public"},
        "data": {"kubeconfig": yaml.safe_dump(kubeconfig, sort_keys=False)},
    }


def bootstrap_configmaps(config: ClusterConfig, certificates_dir: str, ca_pem: bytes
                         ) -> list[tuple[str, str, dict[str, Any]]]:
    """The configmaps kubeadm's upload-config and bootstrap-token phases create."""
    return [
        ("v1", "configmaps", kubeadm_config_configmap(config, certificates_dir)),
        ("v1", "configmaps", kubelet_config_configmap(config)),
        ("v1", "configmaps", cluster_info_configmap(config, ca_pem)),
    ]


RBAC = "rbac.authorization.k8s.io/v1"
RBAC_GROUP = "rbac.authorization.k8s.io"
BOOTSTRAPPERS = "system:bootstrappers:kubeadm:default-node-token"


def _rule(group: str, resources: list[str], verbs: list[str], names: list[str] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"apiGroups": [group], "resources": resources, "verbs": verbs}
    if names:
        rule["resourceNames"] = names
    return rule


def _group(name: str) -> dict[str, str]:
    return {"apiGroup": RBAC_GROUP, "kind": "Group", "name": name}


def _sa(name: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": KUBE_SYSTEM}


def cluster_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules}


def role(namespace: str, name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": RBAC, "kind": "Role", "metadata": {"name": name, "namespace": namespace}, "rules": rules}


def cluster_role_binding(name: str, role_name: str, subjects: list[dict[str, str]]) -> dict[str, Any]:
    return {"apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role_name}, "subjects": subjects}


def role_binding(namespace: str, name: str, role_name: str, subjects: list[dict[str, str]]) -> dict[str, Any]:
    return {"apiVersion": RBAC, "kind": "RoleBinding", "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": role_name}, "subjects": subjects}


def kubeadm_rbac_objects() -> list[tuple[str, str, dict[str, Any]]]:
    """What kubeadm's init phases create besides the add-ons: the `kubeadm:cluster-admins`
    group, node bootstrap (get-nodes, kubelet-bootstrap, CSR auto-approval), and read access to
    cluster-info (anonymous), kubeadm-config and kubelet-config (joining nodes)."""
    return [
        (RBAC, "clusterrolebindings", cluster_role_binding("kubeadm:cluster-admins", "cluster-admin",
                                                           [_group("kubeadm:cluster-admins")])),
        (RBAC, "clusterroles", cluster_role("kubeadm:get-nodes", [_rule("", ["nodes"], ["get"])])),
        (RBAC, "clusterrolebindings", cluster_role_binding("kubeadm:get-nodes", "kubeadm:get-nodes",
                                                           [_group(BOOTSTRAPPERS)])),
        (RBAC, "clusterrolebindings", cluster_role_binding("kubeadm:kubelet-bootstrap", "system:node-bootstrapper",
                                                           [_group(BOOTSTRAPPERS)])),
        (RBAC, "clusterrolebindings", cluster_role_binding(
            "kubeadm:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient", [_group(BOOTSTRAPPERS)])),
        (RBAC, "clusterrolebindings", cluster_role_binding(
            "kubeadm:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", [_group("system:nodes")])),
        (RBAC, "roles", role("kube-public", "kubeadm:bootstrap-signer-clusterinfo",
                             [_rule("", ["configmaps"], ["get"], ["cluster-info"])])),
        (RBAC, "rolebindings", role_binding("kube-public", "kubeadm:bootstrap-signer-clusterinfo",
                                            "kubeadm:bootstrap-signer-clusterinfo",
                                            [{"apiGroup": RBAC_GROUP, "kind": "User", "name": "system:anonymous"}])),
        (RBAC, "roles", role(KUBE_SYSTEM, "kubeadm:nodes-kubeadm-config",
                             [_rule("", ["configmaps"], ["get"], ["kubeadm-config"])])),
        (RBAC, "rolebindings", role_binding(KUBE_SYSTEM, "kubeadm:nodes-kubeadm-config", "kubeadm:nodes-kubeadm-config",
                                            [_group(BOOTSTRAPPERS), _group("system:nodes")])),
        (RBAC, "roles", role(KUBE_SYSTEM, "kubeadm:kubelet-config",
                             [_rule("", ["configmaps"], ["get"], ["kubelet-config"])])),
        (RBAC, "rolebindings", role_binding(KUBE_SYSTEM, "kubeadm:kubelet-config", "kubeadm:kubelet-config",
                                            [_group(BOOTSTRAPPERS), _group("system:nodes")])),
    ]


def kube_proxy_rbac_objects() -> list[tuple[str, str, dict[str, Any]]]:
    """kubeadm's kube-proxy add-on: the ServiceAccount acts as system:node-proxier, and joining
    nodes may read the kube-proxy ConfigMap."""
    return [
        (RBAC, "clusterrolebindings", cluster_role_binding("kubeadm:node-proxier", "system:node-proxier",
                                                           [_sa("kube-proxy")])),
        (RBAC, "roles", role(KUBE_SYSTEM, "kube-proxy", [_rule("", ["configmaps"], ["get"], ["kube-proxy"])])),
        (RBAC, "rolebindings", role_binding(KUBE_SYSTEM, "kube-proxy", "kube-proxy", [_group(BOOTSTRAPPERS)])),
    ]


def coredns_rbac_objects() -> list[tuple[str, str, dict[str, Any]]]:
    """kubeadm's CoreDNS add-on: ClusterRole system:coredns bound to its ServiceAccount."""
    return [
        (RBAC, "clusterroles", cluster_role("system:coredns", [
            _rule("", ["endpoints", "services", "pods", "namespaces"], ["list", "watch"]),
            _rule("discovery.k8s.io", ["endpointslices"], ["list", "watch"]),
        ])),
        (RBAC, "clusterrolebindings", cluster_role_binding("system:coredns", "system:coredns", [_sa("coredns")])),
    ]


def metrics_rbac_objects() -> list[tuple[str, str, dict[str, Any]]]:
    """metrics-server's `system:aggregated-metrics-reader` (its components.yaml): reading
    metrics.k8s.io aggregated into view, edit and admin, so `kubectl top` works for them. (The
    scraper itself runs in the apiserver: no ServiceAccount or system:metrics-server role.)"""
    role = cluster_role("system:aggregated-metrics-reader",
                        [_rule("metrics.k8s.io", ["pods", "nodes"], ["get", "list", "watch"])])
    role["metadata"]["labels"] = {"k8s-app": "metrics-server",
                                  "rbac.authorization.k8s.io/aggregate-to-admin": "true",
                                  "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                                  "rbac.authorization.k8s.io/aggregate-to-view": "true"}
    return [(RBAC, "clusterroles", role)]


def network_addon_rbac_objects() -> list[tuple[str, str, dict[str, Any]]]:
    """What the policy controller reads (NetworkPolicies, Pods, Namespaces) and the Events it
    writes on a policy it cannot program; what the CNI agent reads (Nodes: podCIDRs, addresses)."""
    return [
        (RBAC, "clusterroles", cluster_role(f"knet:{NETWORK_ADDON}", [
            _rule("", ["nodes"], ["get", "list", "watch"]),
            _rule("networking.k8s.io", ["networkpolicies"], ["get", "list", "watch"]),
            _rule("", ["pods", "namespaces"], ["get", "list", "watch"]),
            # the LoadBalancer announcer: which addresses, and which nodes have their endpoints
            _rule("", ["services"], ["list", "watch"]),
            _rule("discovery.k8s.io", ["endpointslices"], ["list", "watch"]),
            _rule("", ["events"], ["create", "patch", "update"]),
            _rule("events.k8s.io", ["events"], ["create", "patch", "update"]),
        ])),
        (RBAC, "clusterrolebindings", cluster_role_binding(f"knet:{NETWORK_ADDON}", f"knet:{NETWORK_ADDON}",
                                                           [_sa(NETWORK_ADDON)])),
    ]


def addon_objects(config: ClusterConfig, nodes_dir: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    """(apiVersion, resource, object) in the order kubeadm creates them: its own RBAC objects,
    kube-proxy, the network add-on, then CoreDNS (each add-on's RBAC before its workload).
    `nodes_dir`: the cluster's node state dirs (see network_addon_daemonset)."""
    return kubeadm_rbac_objects() + [
        ("v1", "serviceaccounts", service_account("kube-proxy")),
        *kube_proxy_rbac_objects(),
        ("v1", "configmaps", kube_proxy_configmap(config)),
        ("apps/v1", "daemonsets", kube_proxy_daemonset(config)),
        ("v1", "serviceaccounts", service_account(NETWORK_ADDON)),
        *network_addon_rbac_objects(),
        ("apps/v1", "daemonsets", network_addon_daemonset(config, nodes_dir)),
        ("v1", "serviceaccounts", service_account("coredns")),
        *coredns_rbac_objects(),
        ("v1", "configmaps", coredns_configmap(config)),
        ("v1", "services", kube_dns_service(config)),
        ("apps/v1", "deployments", coredns_deployment(config)),
        *metrics_rbac_objects(),
        *(ingress_manifests.objects() if config.ingress_controller else []),
    ]


SIM_WORKERS_BINDING = "knet:kubelet-sim-workers"


def sim_kubelet_binding(config: ClusterConfig, user: str) -> dict[str, Any] | None:
    """A simulated cluster's workers share one agent (`user`), which is no single node: the Node
    authorizer cannot judge it, so it gets the `system:node` ClusterRole through a
    ClusterRoleBinding, as every kubelet did before the Node authorizer. Its rights are those of
    any node, on every node (NodeRestriction does not apply to it). None for real clusters, whose
    kubelets are each `system:node:NODE`."""
    if config.dataplane == "real" or not config.workers:
        return None
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": SIM_WORKERS_BINDING},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
