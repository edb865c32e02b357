"""The kubelet's `--config` file (a `KubeletConfiguration`, kubelet.config.k8s.io/v1beta1) and how
it combines with the command line. Pure.

As upstream's kubelet: defaults, then the file's fields, then the flags that were given on the
command line (a flag always wins over the file). Only the fields knet's kubelet honours are read;
a field asking for something it cannot do (a systemd cgroup driver, anonymous requests, an
authorizer other than the apiserver's webhook) is refused at start, never silently ignored, so that
what /var/lib/kubelet/config.yaml says is what the kubelet does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

API_VERSION = "kubelet.config.k8s.io/v1beta1"
KIND = "KubeletConfiguration"
# upstream's --cert-dir default: the serving certificate is kubelet.crt/kubelet.key there
DEFAULT_CERT_DIR = "/var/lib/kubelet/pki"


class KubeletConfigError(ValueError):
    """The config file is unreadable or asks for something knet's kubelet does not do."""


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A metav1.Duration (Go's time.ParseDuration: "10s", "1m30s", "500ms") in seconds."""
    text = str(text).strip()
    if text in ("0", ""):
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise KubeletConfigError(f'time: invalid duration "{text}"')
    return total


def _taints(items: Any) -> list[dict]:
    out = []
    for t in items or []:
        if not isinstance(t, Mapping) or not t.get("key") or t.get("effect") not in (
                "NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise KubeletConfigError(f"registerWithTaints: invalid taint {t!r}")
        taint = {"key": t["key"], "effect": t["effect"]}
        if t.get("value"):
            taint["value"] = t["value"]
        out.append(taint)
    return out


def parse(text: str, path: str = "config") -> dict[str, Any]:
    """The KubeletConfig fields (knet.node.config) a config file sets, by field name."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KubeletConfigError(f"failed to load Kubelet config file {path}: {exc}") from exc
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise KubeletConfigError(f"failed to load Kubelet config file {path}: not a mapping")
    kind, version = doc.get("kind"), doc.get("apiVersion")
    if kind != KIND or version != API_VERSION:
        raise KubeletConfigError(f"failed to load Kubelet config file {path}: want kind {KIND} of {API_VERSION}, "
                                 f"got kind {kind!r} of {version!r}")
    out: dict[str, Any] = {}
    simple = {"clusterDomain": "cluster_domain", "staticPodPath": "pod_manifest_path", "address": "address",
              "tlsCertFile": "tls_cert_file", "tlsPrivateKeyFile": "tls_private_key_file", "cgroupRoot": "cgroup_root",
              "containerRuntimeEndpoint": "container_runtime_endpoint"}
    for key, field in simple.items():
        if doc.get(key) not in (None, ""):
            out[field] = str(doc[key])
    for key, field in {"port": "port", "maxPods": "max_pods", "podPidsLimit": "pod_max_pids"}.items():
        if doc.get(key) is not None:
            try:
                out[field] = int(doc[key])
            except (TypeError, ValueError) as exc:
                raise KubeletConfigError(f"{key}: not an integer: {doc[key]!r}") from exc
    if doc.get("clusterDNS") is not None:
        dns = doc["clusterDNS"]
        if not isinstance(dns, list):
            raise KubeletConfigError("clusterDNS: want a list of IP addresses")
        out["cluster_dns"] = [str(ip) for ip in dns]
    if doc.get("nodeStatusUpdateFrequency"):
        out["node_status_update_frequency"] = parse_duration(doc["nodeStatusUpdateFrequency"])
    if doc.get("registerWithTaints") is not None:
        out["register_with_taints"] = _taints(doc["registerWithTaints"])
    auth = doc.get("authentication") or {}
    ca = ((auth.get("x509") or {}).get("clientCAFile"))
    if ca:
        out["client_ca_file"] = str(ca)
    if (auth.get("anonymous") or {}).get("enabled") is True:
        raise KubeletConfigError("authentication.anonymous.enabled: knet's kubelet serves authenticated "
                                 "requests only (want false)")
    if (auth.get("webhook") or {}).get("enabled") is False:
        raise KubeletConfigError("authentication.webhook.enabled: knet's kubelet authenticates by client "
                                 "certificate and asks the apiserver (want true)")
    mode = (doc.get("authorization") or {}).get("mode")
    if mode not in (None, "Webhook"):
        raise KubeletConfigError(f"authorization.mode {mode!r}: knet's kubelet authorizes through the apiserver "
                                 "(SubjectAccessReview) only (want Webhook)")
    driver = doc.get("cgroupDriver")
    if driver not in (None, "cgroupfs"):
        raise KubeletConfigError(f"cgroupDriver {driver!r}: knet's kubelet manages its pods' cgroups itself "
                                 "(cgroupfs); there is no systemd in a knet node")
    return out


def merge(defaults: Mapping[str, Any], from_file: Mapping[str, Any], flags: Mapping[str, Any]) -> dict[str, Any]:
    """Upstream's precedence: a flag given on the command line, else the file, else the default."""
    return {**defaults, **from_file, **flags}


def default_tls_files(cert_dir: str) -> tuple[str, str]:
    """Without tlsCertFile/tlsPrivateKeyFile: kubelet.crt and kubelet.key in --cert-dir."""
    return f"{cert_dir.rstrip('/')}/kubelet.crt", f"{cert_dir.rstrip('/')}/kubelet.key"
