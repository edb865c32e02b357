"""CoreDNS in Kubernetes (the CKA networking section's lab): which Service and address pods use
for DNS, how many pods serve it, the cluster's zone, a name that reaches a Service of another
namespace, and fixing an app whose database host name does not resolve from its namespace."""

from __future__ import annotations

from knet.labs import kit
from knet.labs.access import ClusterAccess, LabClusterError, Setup
from knet.labs.facts import corefile_zones, nslookup_addresses, resolv_nameservers
from knet.labs.model import Facts, Lab, Question, Verdict, judge_count, normalise_word, right, wrong

NS = "lab-coredns"
PAYROLL = "lab-coredns-payroll"
DB_PORT = 3306


def setup(s: Setup) -> None:
    s.namespace(NS)
    s.namespace(PAYROLL)
    s.create("pods", kit.client_pod("hr", NS))
    s.create("deployments", kit.deployment("webapp", NS, {
        "metadata": {"labels": {"app": "webapp"}},
        "spec": {"containers": [{"name": "webapp", "image": kit.CLIENT_IMAGE, "command": ["sleep", "86400"],
                                 "env": [{"name": "DB_HOST", "value": "mysql"}]}],
                 "terminationGracePeriodSeconds": 0}}))
    s.create("pods", kit.web_pod("mysql", PAYROLL, {"app": "mysql"}, port=DB_PORT))
    s.create("services", kit.service("mysql", PAYROLL, {"app": "mysql"}, DB_PORT, DB_PORT))
    s.wait_ready(NS)
    s.wait_ready(PAYROLL)


def observe_dns(cluster: ClusterAccess, answer: str | None) -> Facts:
    resolv = cluster.exec(NS, "hr", ["cat", "/etc/resolv.conf"])
    if resolv.rc != 0:
        raise LabClusterError(f"cat /etc/resolv.conf in pod {NS}/hr: {resolv.output}")
    nameservers = resolv_nameservers(resolv.stdout)
    services = {s["spec"].get("clusterIP"): (s["metadata"]["namespace"], s["metadata"]["name"])
                for s in cluster.list("services")}
    owner = services.get(nameservers[0]) if nameservers else None
    facts: Facts = {"nameservers": nameservers, "service": owner, "pods": 0, "zones": []}
    if owner:
        selector = (cluster.get("services", owner[1], owner[0]) or {}).get("spec", {}).get("selector") or {}
        pods = cluster.list("pods", owner[0], ",".join(f"{k}={v}" for k, v in selector.items())) if selector else []
        facts["pods"] = len(pods)
        cms = {v["configMap"]["name"] for p in pods[:1] for v in p["spec"].get("volumes") or [] if v.get("configMap")}
        for name in sorted(cms):
            corefile = ((cluster.get("configmaps", name, owner[0]) or {}).get("data") or {}).get("Corefile")
            if corefile:
                facts["zones"] = corefile_zones(corefile)
                facts["configmap"] = name
    return facts


def judge_service(facts: Facts, answer: str | None) -> Verdict:
    if not facts["service"]:
        return wrong(f"no Service has the pods' nameserver address {facts['nameservers']}")
    ns, name = facts["service"]
    got = normalise_word(answer)
    if got in (name, f"{ns}/{name}", f"{name}.{ns}", f"{name}.{ns}.svc"):
        return right(f"pods ask Service {ns}/{name} for names")
    if got in ("coredns", f"{ns}/coredns"):
        return wrong(f"coredns is the Deployment (and its pods); pods reach it through a Service: "
                     f"look for the ClusterIP in a pod's /etc/resolv.conf with kubectl -n {ns} get svc")
    return wrong(f'"{got}" is not the Service whose ClusterIP is in the pods\' /etc/resolv.conf')


def judge_nameserver(facts: Facts, answer: str | None) -> Verdict:
    got = normalise_word(answer)
    if facts["nameservers"] and got == facts["nameservers"][0]:
        return right(f"pods send their DNS queries to {got}")
    return wrong(f'"{got}" is not the nameserver in the pods\' /etc/resolv.conf')


def judge_dns_pods(facts: Facts, answer: str | None) -> Verdict:
    return judge_count(facts["pods"], answer, "pods behind the DNS Service", "kubectl -n kube-system get pods")


def judge_zone(facts: Facts, answer: str | None) -> Verdict:
    if not facts["zones"]:
        return wrong("the CoreDNS Corefile has no kubernetes plugin zone")
    got = normalise_word(answer).rstrip(".")
    if got == facts["zones"][0].rstrip("."):
        return right(f"the cluster's names end in {facts['zones'][0]}")
    if got in (z.rstrip(".") for z in facts["zones"][1:]):
        return wrong(f"{got} is the reverse zone (PTR records); the names of Services end in another")
    return wrong(f'"{got}" is not the zone of the kubernetes plugin in ConfigMap {facts.get("configmap", "coredns")}')


def observe_name(cluster: ClusterAccess, answer: str | None) -> Facts:
    svc = cluster.get("services", "mysql", PAYROLL)
    if svc is None:
        raise LabClusterError(f"Service {PAYROLL}/mysql is gone: knet lab reset, then start the lab again")
    name = normalise_word(answer)
    addrs, output = kit.resolve(cluster, NS, "hr", name) if name else ([], "")
    return {"cluster_ip": svc["spec"].get("clusterIP"), "addresses": addrs, "output": output}


def judge_name(facts: Facts, answer: str | None) -> Verdict:
    name = normalise_word(answer)
    if facts["cluster_ip"] in facts["addresses"]:
        return right(f"{name} resolves in pod hr to mysql's ClusterIP {facts['cluster_ip']}")
    if facts["addresses"]:
        return wrong(f"{name} resolves to {', '.join(facts['addresses'])}, not to Service mysql ({facts['cluster_ip']})")
    if "." not in name:
        return wrong(f"{name} does not resolve from pod hr: a bare name is looked up in the pod's own namespace "
                     f"({NS}) first; Service mysql is in namespace {PAYROLL}")
    return wrong(f"{name} does not resolve from pod hr ({facts['output'].splitlines()[-1] if facts['output'] else 'no answer'})")


def observe_webapp(cluster: ClusterAccess, answer: str | None) -> Facts:
    deploy = cluster.get("deployments", "webapp", NS)
    svc = cluster.get("services", "mysql", PAYROLL)
    if deploy is None or svc is None:
        raise LabClusterError(f"Deployment {NS}/webapp or Service {PAYROLL}/mysql is gone: "
                              "knet lab reset, then start the lab again")
    env = {e["name"]: e.get("value") for c in deploy["spec"]["template"]["spec"]["containers"]
           for e in c.get("env") or []}
    want = env.get("DB_HOST")
    facts: Facts = {"db_host": want, "cluster_ip": svc["spec"].get("clusterIP"), "pod": None}
    for pod in cluster.list("pods", NS, "app=webapp"):
        pod_env = {e["name"]: e.get("value") for c in pod["spec"]["containers"] for e in c.get("env") or []}
        if pod_env.get("DB_HOST") == want and (pod.get("status") or {}).get("phase") == "Running" \
                and not pod["metadata"].get("deletionTimestamp"):
            facts["pod"] = pod["metadata"]["name"]
            break
    if facts["pod"] and want:
        # As the app would: the name in its own environment, resolved and connected to from its pod.
        lookup = cluster.exec(NS, facts["pod"], ["sh", "-c", 'nslookup -timeout=2 -retry=1 "$DB_HOST"'], timeout=25)
        facts["addresses"] = nslookup_addresses(lookup.stdout) if lookup.rc == 0 else []
        conn = cluster.exec(NS, facts["pod"], ["sh", "-c", f'wget -q -O- -T 3 -t 1 "http://$DB_HOST:{DB_PORT}/hostname"'],
                            timeout=20)
        facts["connected"] = conn.rc == 0
        facts["connect_output"] = conn.output
    return facts


def judge_webapp(facts: Facts, answer: str | None) -> Verdict:
    if not facts["db_host"]:
        return wrong(f"Deployment webapp has no DB_HOST any more: set it to a name of Service mysql in {PAYROLL}")
    if not facts["pod"]:
        return wrong(f"no Running webapp pod has DB_HOST={facts['db_host']} yet: the rollout is not done "
                     f"(kubectl -n {NS} rollout status deploy/webapp)")
    if facts["cluster_ip"] not in facts.get("addresses", []):
        return wrong(f"DB_HOST={facts['db_host']} does not resolve to Service mysql ({facts['cluster_ip']}) "
                     f"from pod {facts['pod']}: from namespace {NS}, name the Service with its namespace")
    if not facts.get("connected"):
        return wrong(f"DB_HOST={facts['db_host']} resolves, but webapp cannot connect to port {DB_PORT}: "
                     f"{facts.get('connect_output') or 'no answer'}")
    return right(f"webapp reaches mysql at {facts['db_host']}:{DB_PORT}")


LAB = Lab(
    name="coredns",
    title="CoreDNS: cluster DNS, names across namespaces",
    summary=f"""
Namespace {NS} runs pod hr and Deployment webapp; namespace {PAYROLL} runs the database,
Service mysql (port {DB_PORT}). Use kubectl exec -n {NS} hr -- cat /etc/resolv.conf / nslookup NAME.""",
    setup=setup,
    questions=(
        Question("dns-service", "What is the name of the Service that pods use for DNS?", observe_dns, judge_service,
                 hints=(f"kubectl exec -n {NS} hr -- cat /etc/resolv.conf shows the nameserver's address.",
                        "kubectl get svc -A: which Service has that ClusterIP?")),
        Question("dns-ip", "What IP address do pods use as their DNS server?", observe_dns, judge_nameserver,
                 hints=(f"kubectl exec -n {NS} hr -- cat /etc/resolv.conf",)),
        Question("dns-pods", "How many pods serve the cluster's DNS?", observe_dns, judge_dns_pods,
                 hints=("kubectl -n kube-system get pods -l k8s-app=kube-dns",)),
        Question("zone", "What is the root domain (zone) of the cluster's names, as CoreDNS is configured?",
                 observe_dns, judge_zone,
                 hints=("kubectl -n kube-system get configmap coredns -o yaml: the kubernetes plugin's first zone.",)),
        Question("other-namespace", f"Which name can pod hr (namespace {NS}) use to reach Service mysql "
                 f"in namespace {PAYROLL}?", observe_name, judge_name,
                 hints=("A Service's name is SERVICE.NAMESPACE (or SERVICE.NAMESPACE.svc.ZONE).",
                        f"kubectl exec -n {NS} hr -- nslookup mysql.{PAYROLL}")),
        Question("fix-webapp", f"Deployment webapp (namespace {NS}) connects to its database at DB_HOST=mysql, "
                 "which does not resolve there. Fix DB_HOST so webapp reaches Service mysql.",
                 observe_webapp, judge_webapp, typed=False,
                 hints=(f"kubectl exec -n {NS} deploy/webapp -- nslookup mysql fails: which namespace is it looked up in?",
                        f"kubectl -n {NS} set env deploy/webapp DB_HOST=mysql.{PAYROLL}")),
    ),
)
