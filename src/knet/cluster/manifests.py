"""Static pod manifests of the control plane, as kubeadm writes them to /etc/kubernetes/manifests.

Pure: ClusterConfig + paths -> Pod dicts. The controlplane node's kubelet runs them (and restarts
them when they die) and creates their mirror pods `kube-apiserver-controlplane`, ...
The containers' commands are kubeadm's (`kube-apiserver` and its flag set, ...); the kubelet runs
each as the knet component standing in for that binary, titled with that command line
(knet.cli.binary), so `ps -ef` on the control plane shows the flags an operator looks for
(--service-cluster-ip-range, --cluster-cidr, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knet.cluster.config import ClusterConfig, duration_seconds
from knet.cluster.paths import ClusterPaths

IMAGE_REGISTRY = "registry.k8s.io"
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
ETCD_METRICS_PORT = 2381


def _flags(values: dict[str, str]) -> list[str]:
    # kubeadm sorts the flags by name; so do we, so ps -ef reads the same.
    return [f"--{k}={v}" for k, v in sorted(values.items())]


def apiserver_flags(config: ClusterConfig, paths: ClusterPaths) -> list[str]:
    pki = paths.pki
    flags = {
        "advertise-address": config.control_plane.ip,
        "authorization-mode": "Node,RBAC",
        "bind-address": config.api_server_host,
        "client-ca-file": str(pki / "ca.crt"),
        "enable-admission-plugins": "NodeRestriction",
        "kubelet-client-certificate": str(pki / "apiserver-kubelet-client.crt"),
        "kubelet-client-key": str(pki / "apiserver-kubelet-client.key"),
        # knet only: the built-in metrics.k8s.io scrapes the kubelets (metrics-server's job).
        "metric-resolution": "15s",
        # kubeadm's front proxy (request-header authentication, knet.api.requestheader)
        "proxy-client-cert-file": str(pki / "front-proxy-client.crt"),
        "proxy-client-key-file": str(pki / "front-proxy-client.key"),
        "requestheader-allowed-names": "front-proxy-client",
        "requestheader-client-ca-file": str(pki / "front-proxy-ca.crt"),
        "requestheader-extra-headers-prefix": "X-Remote-Extra-",
        "requestheader-group-headers": "X-Remote-Group",
        "requestheader-username-headers": "X-Remote-User",
        "secure-port": str(config.api_server_port),
        "service-account-issuer": f"https://kubernetes.default.svc.{config.dns_domain}",
        "service-account-key-file": str(pki / "sa.pub"),
        "service-account-signing-key-file": str(pki / "sa.key"),
        "service-cluster-ip-range": config.service_subnet,
        "tls-cert-file": str(pki / "apiserver.crt"),
        "tls-private-key-file": str(pki / "apiserver.key"),
        "token-auth-file": str(paths.token_file),
    }
    if config.dataplane != "real":
        # knet only: simulated nodes' kubelets share a loopback port each agent registers as the
        # node's knet.io/kubelet-endpoint; a real cluster's apiserver ignores that annotation.
        flags["kubelet-endpoint-annotation"] = "true"
    if config.service_account_token_max_expiration:
        # The test setting: tokens as short as asked, none extended to a year.
        flags["service-account-max-token-expiration"] = config.service_account_token_max_expiration
        flags["service-account-extend-token-expiration"] = "false"
        if duration_seconds(config.service_account_token_max_expiration) < 3600:
            flags["allow-short-service-account-max-token-expiration"] = "true"  # knet only: below upstream's 1h
    if config.storage == "etcd":
        # kubeadm's: the apiserver reaches its etcd on loopback (both run in the control-plane
        # node's network namespace), over TLS with its own etcd client certificate.
        flags["etcd-cafile"] = str(pki / "etcd" / "ca.crt")
        flags["etcd-certfile"] = str(pki / "apiserver-etcd-client.crt")
        flags["etcd-keyfile"] = str(pki / "apiserver-etcd-client.key")
        flags["etcd-servers"] = f"https://127.0.0.1:{ETCD_CLIENT_PORT}"
    else:
        flags["data-dir"] = str(paths.data)
    return _flags(flags)


def controller_manager_flags(config: ClusterConfig, paths: ClusterPaths) -> list[str]:
    pki = paths.pki
    kubeconfig = str(paths.component_kubeconfig("controller-manager"))
    return _flags(
        {
            "allocate-node-cidrs": "true",
            "authentication-kubeconfig": kubeconfig,
            "authorization-kubeconfig": kubeconfig,
            "bind-address": "127.0.0.1",
            "client-ca-file": str(pki / "ca.crt"),
            "cluster-cidr": config.pod_subnet,
            "cluster-name": "kubernetes",
            "cluster-signing-cert-file": str(pki / "ca.crt"),
            "cluster-signing-key-file": str(pki / "ca.key"),
            "controllers": "*,bootstrapsigner,tokencleaner",
            "kubeconfig": kubeconfig,
            "leader-elect": "true",
            "node-cidr-mask-size": str(config.node_cidr_mask_size),
            "requestheader-client-ca-file": str(pki / "front-proxy-ca.crt"),
            "root-ca-file": str(pki / "ca.crt"),
            "service-account-private-key-file": str(pki / "sa.key"),
            "service-cluster-ip-range": config.service_subnet,
            "use-service-account-credentials": "true",
            **({"load-balancer-pool": config.load_balancer_pool} if config.load_balancer_pool else {}),
            **_no_serving_when_simulated(config),
            **config.controller_manager_extra_args,
        }
    )


def _no_serving_when_simulated(config: ClusterConfig) -> dict[str, str]:
    """A simulated cluster's control plane runs in the host's network namespace, where several
    clusters would share 10257/10259: none of them serves it (upstream's --secure-port=0)."""
    return {"secure-port": "0"} if config.dataplane == "sim" else {}


def scheduler_flags(config: ClusterConfig, paths: ClusterPaths) -> list[str]:
    kubeconfig = str(paths.component_kubeconfig("scheduler"))
    return _flags(
        {
            "authentication-kubeconfig": kubeconfig,
            "authorization-kubeconfig": kubeconfig,
            "bind-address": "127.0.0.1",
            "kubeconfig": kubeconfig,
            "leader-elect": "true",
            **_no_serving_when_simulated(config),
            **config.scheduler_extra_args,
        }
    )


def etcd_client_urls(config: ClusterConfig) -> list[str]:
    """Where etcd serves clients: loopback (the apiserver) and the node's address (kubeadm's
    advertise-client-url). A simulated cluster's node address exists only on paper: loopback alone."""
    hosts = dict.fromkeys(["127.0.0.1", config.api_server_host])
    return [f"https://{h}:{ETCD_CLIENT_PORT}" for h in hosts]


def etcd_command(config: ClusterConfig, paths: ClusterPaths) -> list[str]:
    """kubeadm's etcd: TLS for clients and peers, each side proving itself with a certificate
    of etcd's own CA (--client-cert-auth, --peer-client-cert-auth); plain HTTP only for
    metrics and /health on loopback (--listen-metrics-urls), as kubeadm's probes use."""
    host = config.api_server_host
    etcd_pki = paths.pki / "etcd"
    peer = f"https://{host}:{ETCD_PEER_PORT}"
    return [
        "etcd",
        *_flags(
            {
                "advertise-client-urls": f"https://{host}:{ETCD_CLIENT_PORT}",
                "cert-file": str(etcd_pki / "server.crt"),
                "client-cert-auth": "true",
                "data-dir": str(paths.data / "etcd"),
                "experimental-initial-corrupt-check": "true",
                "experimental-watch-progress-notify-interval": "5s",
                "initial-advertise-peer-urls": peer,
                "initial-cluster": f"{config.control_plane.name}={peer}",
                "key-file": str(etcd_pki / "server.key"),
                "listen-client-urls": ",".join(etcd_client_urls(config)),
                "listen-metrics-urls": f"http://127.0.0.1:{ETCD_METRICS_PORT}",
                "listen-peer-urls": peer,
                "name": config.control_plane.name,
                "peer-cert-file": str(etcd_pki / "peer.crt"),
                "peer-client-cert-auth": "true",
                "peer-key-file": str(etcd_pki / "peer.key"),
                "peer-trusted-ca-file": str(etcd_pki / "ca.crt"),
                "snapshot-count": "10000",
                "trusted-ca-file": str(etcd_pki / "ca.crt"),
            }
        ),
    ]


@dataclass(frozen=True)
class HostPath:
    """A hostPath volume shown at its own path, as kubeadm's static pods mount /etc/kubernetes/pki,
    /var/lib/etcd and their kubeconfig: a container sees nothing of the host's state
    directory but these (runc: its root filesystem holds only its binds), so a component sees
    only the files given to it."""

    name: str
    path: Path
    type: str = "DirectoryOrCreate"
    read_only: bool = True


def _host_paths(volumes: list[HostPath]) -> tuple[list[dict], list[dict]]:
    """(volumes, volumeMounts) of a static pod."""
    return (
        [{"name": v.name, "hostPath": {"path": str(v.path), "type": v.type}} for v in volumes],
        [{"name": v.name, "mountPath": str(v.path), **({"readOnly": True} if v.read_only else {})} for v in volumes],
    )


def static_pod(
    component: str, command: list[str], config: ClusterConfig, *, image: str | None = None,
    annotations: dict[str, str] | None = None, host_paths: list[HostPath] | None = None,
) -> dict[str, Any]:
    """A control-plane static pod shaped like kubeadm's (labels component/tier, hostNetwork)."""
    metadata: dict[str, Any] = {
        "name": component,
        "namespace": "kube-system",
        "labels": {"component": component, "tier": "control-plane"},
    }
    if annotations:
        metadata["annotations"] = annotations
    volumes, volume_mounts = _host_paths(host_paths or [])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "containers": [
                {
                    "name": component,
                    "image": image or f"{IMAGE_REGISTRY}/{component}:{config.kubernetes_version}",
                    "imagePullPolicy": "IfNotPresent",
                    "command": command,
                    "resources": {"requests": {"cpu": "250m" if component == "kube-apiserver" else "100m"}},
                    **({"volumeMounts": volume_mounts} if volume_mounts else {}),
                }
            ],
            "hostNetwork": True,
            "priority": 2000001000,
            "priorityClassName": "system-node-critical",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            **({"volumes": volumes} if volumes else {}),
        },
    }


def control_plane_manifests(config: ClusterConfig, paths: ClusterPaths) -> dict[str, dict]:
    """File name -> static pod, for the controlplane node's --pod-manifest-path. The commands
    are kubeadm's: the binary's name (on its image's PATH) and its flags."""
    advertise = f"{config.control_plane.ip}:{config.api_server_port}"
    certs = HostPath("k8s-certs", paths.pki)
    apiserver_volumes = [certs]
    if config.storage != "etcd":
        apiserver_volumes.append(HostPath("knet-data", paths.data, read_only=False))  # the SQLite store

    def kubeconfig(component: str) -> HostPath:
        return HostPath("kubeconfig", paths.component_kubeconfig(component), "FileOrCreate")

    manifests = {
        "kube-apiserver.yaml": static_pod(
            "kube-apiserver",
            ["kube-apiserver", *apiserver_flags(config, paths)],
            config,
            annotations={"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": advertise},
            host_paths=apiserver_volumes,
        ),
        "kube-controller-manager.yaml": static_pod(
            "kube-controller-manager",
            ["kube-controller-manager", *controller_manager_flags(config, paths)],
            config,
            host_paths=[certs, kubeconfig("controller-manager")],
        ),
        "kube-scheduler.yaml": static_pod(
            "kube-scheduler", ["kube-scheduler", *scheduler_flags(config, paths)], config,
            host_paths=[kubeconfig("scheduler")],
        ),
    }
    if config.storage == "etcd":
        manifests["etcd.yaml"] = static_pod(
            "etcd", etcd_command(config, paths), config, image=f"{IMAGE_REGISTRY}/etcd:3.5.10-0",
            annotations={"kubeadm.kubernetes.io/etcd.advertise-client-urls":
                         f"https://{config.api_server_host}:{ETCD_CLIENT_PORT}"},
            host_paths=[HostPath("etcd-certs", paths.pki / "etcd"),
                        HostPath("etcd-data", paths.data / "etcd", read_only=False)],
        )
    return manifests
