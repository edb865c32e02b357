"""Bound service-account tokens against a real `knet apiserver`, with the real kubectl and raw
HTTP: TokenRequest (`kubectl create token` with audiences, durations and bound objects), what
is refused (401) as kube-apiserver refuses it, `kubectl auth whoami` with a pod-bound token,
TokenReview, the kubelet's extended tokens, the lifetime cap, and the kubelet's token manager
renewing a projected token file before it expires."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import ssl
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from knet.api.tokens import EXPIRATION_EXTENSION_SECONDS, TokenSigner, claims
from knet.cluster.pki import create_sa_keypair

ISSUER = "https://kubernetes.default.svc.cluster.local"


def payload_of(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def http(server, method: str, path: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict, dict]:
    """(status, decoded body, headers) of one raw HTTPS request, as `token` (default: the admin's)."""
    ctx = ssl.create_default_context(cafile=server.ca_file)
    headers = {"Authorization": f"Bearer {token or server.token}", "Content-Type": "application/json"}
    req = urllib.request.Request(server.url + path, data=json.dumps(body).encode() if body is not None else None,
                                 method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), dict(e.headers)


def as_token(server, token: str, *args: str):
    """kubectl with only this bearer token (no client certificate)."""
    import shutil
    import subprocess

    return subprocess.run([shutil.which("kubectl") or "kubectl", "--kubeconfig=/dev/null", "--server", server.url, "--certificate-authority",
                           server.ca_file, "--token", token, *args], text=True, capture_output=True, timeout=30)


def get_json(server, *args: str) -> dict:
    return json.loads(server.kubectl_ok(*args, "-o", "json"))


def make_pod(server, ns: str, name: str, sa: str) -> dict:
    server.kubectl_ok("-n", ns, "apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"serviceAccountName": sa, "containers": [{"name": "c", "image": "busybox"}]}}))
    return get_json(server, "-n", ns, "get", "pod", name)


def token_request(server, ns: str, sa: str, spec: dict, token: str | None = None) -> tuple[int, dict, dict]:
    return http(server, "POST", f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token", token,
                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})


def who(server, token: str) -> int:
    """200 when the token authenticates (discovery is open to every authenticated user, as
    system:discovery grants), 401 when it does not."""
    return http(server, "GET", "/api", token)[0]


def sign(server, payload: dict) -> str:
    return TokenSigner((server.pki_dir / "sa.key").read_bytes(), ISSUER).sign(payload)


# --- TokenRequest -------------------------------------------------------------------------------

def test_create_token_audiences_duration_and_bound_objects(apiserver, namespace):
    apiserver.kubectl_ok("-n", namespace, "create", "serviceaccount", "robot")
    sa_uid = get_json(apiserver, "-n", namespace, "get", "sa", "robot")["metadata"]["uid"]
    default = payload_of(apiserver.kubectl_ok("-n", namespace, "create", "token", "robot").strip())
    assert default["aud"] == [ISSUER]  # the apiserver's audiences (--api-audiences, default the issuer)
    assert default["exp"] - default["iat"] == 3600
    assert default["kubernetes.io"] == {"namespace": namespace, "serviceaccount": {"name": "robot", "uid": sa_uid}}
    assert default["sub"] == f"system:serviceaccount:{namespace}:robot" and default["iss"] == ISSUER
    assert default["nbf"] == default["iat"] and uuid.UUID(default["jti"])
    vault = payload_of(apiserver.kubectl_ok("-n", namespace, "create", "token", "robot", "--audience", "vault",
                                            "--audience", "other", "--duration", "20m").strip())
    assert vault["aud"] == ["vault", "other"] and vault["exp"] - vault["iat"] == 1200

    pod = make_pod(apiserver, namespace, "p", "robot")
    bound = payload_of(apiserver.kubectl_ok(
        "-n", namespace, "create", "token", "robot", "--bound-object-kind", "Pod", "--bound-object-name", "p",
        "--bound-object-uid", pod["metadata"]["uid"]).strip())
    assert bound["kubernetes.io"]["pod"] == {"name": "p", "uid": pod["metadata"]["uid"]}
    apiserver.kubectl_ok("-n", namespace, "create", "secret", "generic", "s", "--from-literal=a=b")
    secret_uid = get_json(apiserver, "-n", namespace, "get", "secret", "s")["metadata"]["uid"]
    bound = payload_of(apiserver.kubectl_ok("-n", namespace, "create", "token", "robot", "--bound-object-kind",
                                            "Secret", "--bound-object-name", "s").strip())
    assert bound["kubernetes.io"]["secret"] == {"name": "s", "uid": secret_uid}

    p = apiserver.kubectl("-n", namespace, "create", "token", "robot", "--bound-object-kind", "Pod",
                          "--bound-object-name", "p", "--bound-object-uid", "not-the-uid")
    assert p.returncode != 0 and ("the UID in the bound object reference (not-the-uid) does not match the UID in "
                                  "record. The object might have been deleted and then recreated") in p.stderr
    p = apiserver.kubectl("-n", namespace, "create", "token", "robot", "--bound-object-kind", "Pod",
                          "--bound-object-name", "nope")
    assert p.returncode != 0 and 'pods "nope" not found' in p.stderr
    p = apiserver.kubectl("-n", namespace, "create", "token", "ghost")
    assert p.returncode != 0 and 'serviceaccounts "ghost" not found' in p.stderr
    p = apiserver.kubectl("-n", namespace, "create", "token", "robot", "--duration", "5m")
    assert p.returncode != 0 and "may not specify a duration less than 10 minutes" in p.stderr


def test_token_request_refusals_with_status_codes(apiserver, namespace):
    apiserver.kubectl_ok("-n", namespace, "create", "serviceaccount", "robot")
    apiserver.kubectl_ok("-n", namespace, "create", "serviceaccount", "other")
    make_pod(apiserver, namespace, "p", "robot")
    code, body, _ = token_request(apiserver, namespace, "robot", {"expirationSeconds": 599})
    assert code == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "spec.expirationSeconds"
    code, body, _ = token_request(apiserver, namespace, "robot", {"expirationSeconds": 2 ** 32 + 1})
    assert code == 422 and "may not specify a duration larger than 2^32 seconds" in body["message"]
    code, body, _ = token_request(apiserver, namespace, "ghost", {})
    assert code == 404
    code, body, _ = token_request(apiserver, namespace, "robot", {"boundObjectRef": {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "d"}})
    assert (code, body["message"]) == (400, "cannot bind token to object of type apps/v1, Kind=Deployment")
    # a pod of another service account cannot lend its name to this one's token
    code, body, _ = token_request(apiserver, namespace, "other", {"boundObjectRef": {
        "apiVersion": "v1", "kind": "Pod", "name": "p"}})
    assert code == 400 and "to pod running with different serviceaccount name" in body["message"]
    code, body, _ = token_request(apiserver, namespace, "robot", {"boundObjectRef": {
        "apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "stale"}})
    assert code == 409


def test_kubelet_tokens_are_extended_but_say_when_to_refresh(apiserver, namespace):
    apiserver.kubectl_ok("-n", namespace, "create", "serviceaccount", "robot")
    pod = make_pod(apiserver, namespace, "p", "robot")
    ref = {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": pod["metadata"]["uid"]}
    before = int(time.time())
    code, body, _ = token_request(apiserver, namespace, "robot", {"expirationSeconds": 3607, "boundObjectRef": ref})
    assert code == 201 and body["spec"]["expirationSeconds"] == 3607
    status_exp = dt.datetime.fromisoformat(body["status"]["expirationTimestamp"].replace("Z", "+00:00")).timestamp()
    assert before + 3607 <= status_exp <= time.time() + 3607  # what the kubelet refreshes by
    claims_ = payload_of(body["status"]["token"])
    assert claims_["exp"] - claims_["iat"] == EXPIRATION_EXTENSION_SECONDS  # valid for a year
    assert claims_["kubernetes.io"]["warnafter"] == claims_["iat"] + 3607
    # not for another audience, another lifetime, or a token not bound to a pod
    for spec in ({"expirationSeconds": 3607, "boundObjectRef": ref, "audiences": ["vault"]},
                 {"expirationSeconds": 3600, "boundObjectRef": ref}, {"expirationSeconds": 3607}):
        code, body, _ = token_request(apiserver, namespace, "robot", spec)
        c = payload_of(body["status"]["token"])
        assert code == 201 and c["exp"] - c["iat"] == spec["expirationSeconds"] and "warnafter" not in c["kubernetes.io"]


# --- what is refused --------------------------------------------------------------------------

def test_tokens_are_refused_as_kube_apiserver_refuses_them(apiserver, namespace):
    apiserver.kubectl_ok("-n", namespace, "create", "serviceaccount", "robot")
    good = apiserver.kubectl_ok("-n", namespace, "create", "token", "robot").strip()
    assert who(apiserver, good) == 200

    # another audience
    vault = apiserver.kubectl_ok("-n", namespace, "create", "token", "robot", "--audience", "vault").strip()
    code, body, _ = http(apiserver, "GET", "/api", vault)
    assert (code, body["kind"], body["reason"], body["message"]) == (401, "Status", "Unauthorized", "Unauthorized")
    p = as_token(apiserver, vault, "get", "ns", "default")
    assert p.returncode != 0 and "You must be logged in to the server (Unauthorized)" in p.stderr

    # expired (past go-jose's 60 s leeway); within the leeway still good, as upstream
    sa = get_json(apiserver, "-n", namespace, "get", "sa", "robot")
    now = int(time.time())
    expired = sign(apiserver, claims(sa=sa, audiences=[ISSUER], expiration_seconds=600, now=now - 600 - 61,
                                     issuer=ISSUER))
    assert who(apiserver, expired) == 401
    lenient = sign(apiserver, claims(sa=sa, audiences=[ISSUER], expiration_seconds=600, now=now - 600 - 30,
                                     issuer=ISSUER))
    assert who(apiserver, lenient) == 200

    # an account that never existed (a well-signed token naming it)
    ghost = {"metadata": {"name": "ghost", "namespace": namespace, "uid": str(uuid.uuid4())}}
    assert who(apiserver, sign(apiserver, claims(sa=ghost, audiences=[ISSUER], expiration_seconds=600, now=now,
                                                 issuer=ISSUER))) == 401

    # signed by another key, or by ours for another issuer
    stranger = TokenSigner(create_sa_keypair().key_pem, ISSUER)
    assert who(apiserver, stranger.sign(claims(sa=sa, audiences=[ISSUER], expiration_seconds=600, now=now,
                                                issuer=ISSUER))) == 401
    assert who(apiserver, sign(apiserver, claims(sa=sa, audiences=[ISSUER], expiration_seconds=600, now=now,
                                                 issuer="https://elsewhere"))) == 401

    # the account deleted and created again: a new uid, the old tokens are dead
    apiserver.kubectl_ok("-n", namespace, "delete", "sa", "robot")
    assert who(apiserver, good) == 401
    apiserver.kubectl_ok("-n", namespace, "create", "serviceaccount", "robot")
    assert who(apiserver, good) == 401
    assert who(apiserver, apiserver.kubectl_ok("-n", namespace, "create", "token", "robot").strip()) == 200


def test_a_pod_bound_token_dies_with_its_pod(apiserver, namespace):
    apiserver.kubectl_ok("-n", namespace, "create", "serviceaccount", "robot")
    pod = make_pod(apiserver, namespace, "p", "robot")
    token = apiserver.kubectl_ok("-n", namespace, "create", "token", "robot", "--bound-object-kind", "Pod",
                                 "--bound-object-name", "p", "--bound-object-uid", pod["metadata"]["uid"]).strip()
    assert who(apiserver, token) == 200
    apiserver.kubectl_ok("-n", namespace, "delete", "pod", "p", "--grace-period=0", "--force")
    assert who(apiserver, token) == 401
    # a new pod of the same name is another pod
    make_pod(apiserver, namespace, "p", "robot")
    assert who(apiserver, token) == 401

    # a bound Secret likewise
    apiserver.kubectl_ok("-n", namespace, "create", "secret", "generic", "s", "--from-literal=a=b")
    token = apiserver.kubectl_ok("-n", namespace, "create", "token", "robot", "--bound-object-kind", "Secret",
                                 "--bound-object-name", "s").strip()
    assert who(apiserver, token) == 200
    apiserver.kubectl_ok("-n", namespace, "delete", "secret", "s")
    assert who(apiserver, token) == 401


def test_whoami_with_a_pod_bound_token(apiserver, namespace):
    apiserver.kubectl_ok("-n", namespace, "create", "serviceaccount", "robot")
    sa_uid = get_json(apiserver, "-n", namespace, "get", "sa", "robot")["metadata"]["uid"]
    pod = make_pod(apiserver, namespace, "p", "robot")
    token = apiserver.kubectl_ok("-n", namespace, "create", "token", "robot", "--bound-object-kind", "Pod",
                                 "--bound-object-name", "p").strip()
    p = as_token(apiserver, token, "auth", "whoami", "-o", "json")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)["status"]["userInfo"]
    assert info["username"] == f"system:serviceaccount:{namespace}:robot" and info["uid"] == sa_uid
    assert info["groups"] == ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]
    assert info["extra"]["authentication.kubernetes.io/pod-name"] == ["p"]
    assert info["extra"]["authentication.kubernetes.io/pod-uid"] == [pod["metadata"]["uid"]]
    assert info["extra"]["authentication.kubernetes.io/credential-id"] == [f"JTI={payload_of(token)['jti']}"]
    p = as_token(apiserver, token, "auth", "whoami")
    assert "authentication.kubernetes.io/pod-name" in p.stdout and "[p]" in p.stdout


def test_token_review_makes_the_same_checks_for_the_asked_audiences(apiserver, namespace):
    apiserver.kubectl_ok("-n", namespace, "create", "serviceaccount", "robot")
    vault = apiserver.kubectl_ok("-n", namespace, "create", "token", "robot", "--audience", "vault").strip()

    def review(token: str, audiences: list[str] | None = None) -> dict:
        spec: dict = {"token": token}
        if audiences:
            spec["audiences"] = audiences
        code, body, _ = http(apiserver, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", None,
                             {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec})
        assert code == 201
        return body["status"]

    assert review(vault)["authenticated"] is False
    ok = review(vault, ["vault"])
    assert ok["authenticated"] is True and ok["audiences"] == ["vault"]
    assert ok["user"]["username"] == f"system:serviceaccount:{namespace}:robot"
    assert review(apiserver.token)["audiences"] == [ISSUER]  # the token file: the apiserver's own audiences
    assert review(apiserver.token, ["vault"])["authenticated"] is False
    apiserver.kubectl_ok("-n", namespace, "delete", "sa", "robot")
    gone = review(vault, ["vault"])
    assert gone["authenticated"] is False and 'serviceaccounts "robot" not found' in gone["error"]
    code, body, _ = http(apiserver, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", None,
                         {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {}})
    assert code == 400


# --- lifetime cap and the kubelet's renewal ---------------------------------------------------

def test_max_expiration_below_an_hour_needs_knets_test_allowance(apiserver_factory):
    with pytest.raises(RuntimeError, match="must be between 1 hour and 2\\^32 seconds"):
        apiserver_factory(extra_args=["--service-account-max-token-expiration=10s"])


def test_kubelet_token_manager_renews_a_capped_token_before_it_expires(apiserver_factory, tmp_path):
    from knet.client import ApiClient, load_config
    from knet.node import volumes
    from knet.node.tokenmanager import TokenManager

    server = apiserver_factory(extra_args=["--service-account-max-token-expiration=10s",
                                           "--allow-short-service-account-max-token-expiration=true",
                                           "--service-account-extend-token-expiration=false"])
    server.kubectl_ok("create", "serviceaccount", "robot")
    server.kubectl_ok("create", "configmap", "kube-root-ca.crt", f"--from-file=ca.crt={server.ca_file}")
    pod = make_pod(server, "default", "p", "robot")
    code, body, headers = token_request(server, "default", "robot", {"expirationSeconds": 3607})
    assert code == 201 and body["spec"]["expirationSeconds"] == 10
    assert "requested expiration of 3607 seconds shortened to 10 seconds" in headers.get("Warning", "")

    async def run() -> tuple[str, str, int]:
        tokens = TokenManager()
        async with ApiClient(load_config(kubeconfig=server.kubeconfig)) as api:
            paths = await volumes.materialise(api, pod, tmp_path, tokens)
            (volume,) = [v["name"] for v in pod["spec"]["volumes"] if "projected" in v]
            token_file = paths[volume] / "token"
            first = token_file.read_text()
            inode = token_file.stat().st_ino
            assert payload_of(first)["exp"] - payload_of(first)["iat"] == 10  # 3607 s capped, not extended
            renewed, started = 0, time.monotonic()
            while time.monotonic() - started < 12 and token_file.read_text() == first:
                renewed += await volumes.refresh_tokens(api, tokens, pod, tmp_path)
                await asyncio.sleep(0.2)
            # a new file renamed over the old one: a reader has the old token or the new, whole
            assert token_file.stat().st_ino != inode
            return first, token_file.read_text(), int(time.monotonic() - started)

    first, second, waited = asyncio.run(run())
    assert second != first and 6 <= waited <= 9  # after 80 % of the 10 s, before expiry
    assert who(server, second) == 200
    assert payload_of(second)["kubernetes.io"]["pod"]["uid"] == pod["metadata"]["uid"]
    assert not list(Path(tmp_path).rglob("*.tmp"))


# --- legacy Secret tokens ----------------------------------------------------------------------

def test_legacy_secret_tokens_filled_by_the_controller_manager(apiserver, namespace, tmp_path):
    """kube-controller-manager's serviceaccount-token controller fills a Secret that asks for a
    token; the token authenticates while its Secret and account exist."""
    import subprocess
    import sys

    log = open(tmp_path / "kcm.log", "wb")
    kcm = subprocess.Popen([sys.executable, "-c", "from knet.cli.main import main; main()", "controller-manager",
                            f"--kubeconfig={apiserver.kubeconfig}", "--controllers=serviceaccount-token",
                            f"--service-account-private-key-file={apiserver.pki_dir / 'sa.key'}",
                            f"--root-ca-file={apiserver.ca_file}", "--leader-elect=false"],
                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        apiserver.kubectl_ok("-n", namespace, "create", "serviceaccount", "robot")
        sa_uid = get_json(apiserver, "-n", namespace, "get", "sa", "robot")["metadata"]["uid"]
        secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
                  "metadata": {"name": "robot-token", "annotations": {"kubernetes.io/service-account.name": "robot"}}}
        apiserver.kubectl_ok("-n", namespace, "apply", "-f", "-", input=json.dumps(secret))

        def filled() -> dict | None:
            s = get_json(apiserver, "-n", namespace, "get", "secret", "robot-token")
            return s if (s.get("data") or {}).get("token") else None

        deadline = time.monotonic() + 20
        while (s := filled()) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert s is not None, (tmp_path / "kcm.log").read_text()[-3000:]
        assert s["metadata"]["annotations"]["kubernetes.io/service-account.uid"] == sa_uid
        assert base64.b64decode(s["data"]["namespace"]).decode() == namespace
        assert base64.b64decode(s["data"]["ca.crt"]).decode() == Path(apiserver.ca_file).read_text()
        token = base64.b64decode(s["data"]["token"]).decode()
        c = payload_of(token)
        assert c["iss"] == "kubernetes/serviceaccount" and "exp" not in c and "aud" not in c
        assert c["kubernetes.io/serviceaccount/secret.name"] == "robot-token"
        p = as_token(apiserver, token, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
        assert p.stdout == f"system:serviceaccount:{namespace}:robot", p.stderr
        # the account goes: the controller deletes its token Secret, and the token is dead
        apiserver.kubectl_ok("-n", namespace, "delete", "sa", "robot")
        assert who(apiserver, token) == 401
        deadline = time.monotonic() + 20
        while apiserver.kubectl("-n", namespace, "get", "secret", "robot-token").returncode == 0:
            assert time.monotonic() < deadline, "the token Secret of a deleted account was kept"
            time.sleep(0.2)
    finally:
        kcm.terminate()
        kcm.wait(10)
        log.close()


def test_knets_client_rereads_its_token_file_after_a_401(apiserver, namespace, tmp_path):
    """client-go's behaviour for in-cluster tokens: the file is read once a minute, and at once
    when the apiserver refuses the token it holds; the refused request is sent again."""
    from knet.client import ApiClient
    from knet.client.config import ClientConfig

    apiserver.kubectl_ok("-n", namespace, "create", "serviceaccount", "robot")
    apiserver.kubectl_ok("-n", namespace, "create", "rolebinding", "robot-view", "--clusterrole=view",
                         f"--serviceaccount={namespace}:robot")
    token_file = tmp_path / "token"
    token_file.write_text(apiserver.kubectl_ok("-n", namespace, "create", "token", "robot"))
    config = ClientConfig(server=apiserver.url, ca_data=Path(apiserver.ca_file).read_bytes(),
                          token_file=str(token_file))

    async def run() -> tuple[str, str]:
        async with ApiClient(config) as api:
            before = (await api.get("v1", "serviceaccounts", "robot", namespace=namespace))["metadata"]["name"]
            # the account is recreated: the token the client holds is dead; the file gets a new one
            apiserver.kubectl_ok("-n", namespace, "delete", "sa", "robot")
            apiserver.kubectl_ok("-n", namespace, "create", "serviceaccount", "robot")
            token_file.write_text(apiserver.kubectl_ok("-n", namespace, "create", "token", "robot"))
            after = (await api.get("v1", "serviceaccounts", "robot", namespace=namespace))["metadata"]["name"]
            return before, after

    assert asyncio.run(run()) == ("robot", "robot")
