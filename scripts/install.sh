#!/usr/bin/env bash
# Installs everything knet and its tests need on a fresh Debian machine (run as root).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  iproute2                      # ip netns/link/addr/route: node and pod namespaces
  iptables                      # iptables-restore: kube-proxy iptables mode
  nftables                      # nft and libnftables.so.1 (libnftables1): kube-proxy nftables mode
  conntrack                     # stale UDP flow cleanup, as kube-proxy does
  containernetworking-plugins   # bridge, host-local, loopback, portmap CNI plugins
  etcd-server                   # optional etcd storage backend
  runc                          # OCI runtime: every pod container of the real dataplane runs under it
  gcc libc6-dev                 # builds knet's small C helpers: pause.c and crilog.c (each container's log writer)
  procps iputils-ping curl wget dnsutils util-linux  # ps, ping, curl, wget (knet lab probes, as busybox has it), dig/nslookup, nsenter inside nodes/pods
  openssh-server openssh-client # each node's sshd, `ssh node01` from the controlplane, ssh-keygen
  tzdata                        # IANA time zones (/usr/share/zoneinfo) of CronJob spec.timeZone
  openssl wrk                   # self-signed certificates of the ingress TLS tests; bench/ingress_bench.py's load generator
  nodejs                        # Node.js: the JavaScript client test (@kubernetes/client-node)
)
# npm installs that client (tests/clients/js). A nodejs that brings its own npm (NodeSource's
# packages) conflicts with Debian's npm package, so it is only asked for when npm is missing.
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(npm)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "knet: needs root to install: ${missing[*]} (run: sudo bash scripts/install.sh)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # No package may start a service on the host (openssh-server's postinst would start the host's
  # own sshd on port 22; knet runs one per node, inside the node): policy-rc.d refuses starts.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# knet install.sh: no service starts during this install\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v kubectl >/dev/null 2>&1; then
  echo "knet: kubectl not found on PATH; the api and e2e tests use the real kubectl." >&2
  echo "      install kubectl (https://kubernetes.io/docs/tasks/tools/) and run again." >&2
  exit 1
fi

python3 -m pip install -q --disable-pip-version-check -e ".[dev]"
# The JavaScript client the API tests run, at the versions of its package-lock.json.
npm ci --prefix tests/clients/js --no-audit --no-fund --loglevel=error
