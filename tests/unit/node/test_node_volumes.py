"""Volume files under the pod dir, against the in-memory FakeApi."""

import base64

import pytest

from knet.client.fake import FakeApi
from knet.node.volumes import VolumeError, materialise, refresh

POD = {"metadata": {"name": "p", "namespace": "default", "uid": "u1", "labels": {"app": "web"}},
       "spec": {"nodeName": "n1", "volumes": [
           {"name": "cfg", "configMap": {"name": "settings"}},
           {"name": "picked", "configMap": {"name": "settings", "items": [{"key": "a", "path": "sub/renamed"}]}},
           {"name": "creds", "secret": {"secretName": "creds"}},
           {"name": "info", "downwardAPI": {"items": [
               {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
               {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
           {"name": "scratch", "emptyDir": {}}]},
       "status": {}}


async def test_materialise_and_refresh(tmp_path):
    api = FakeApi()
    await api.create("v1", "configmaps", {"metadata": {"name": "settings"}, "data": {"a": "1", "b": "2"}},
                     namespace="default")
    await api.create("v1", "secrets", {"metadata": {"name": "creds"},
                                       "data": {"pw": base64.b64encode(b"s3cret").decode()}}, namespace="default")
    paths = await materialise(api, POD, tmp_path)
    assert (paths["cfg"] / "a").read_text() == "1" and (paths["cfg"] / "b").read_text() == "2"
    assert (paths["picked"] / "sub" / "renamed").read_text() == "1" and not (paths["picked"] / "b").exists()
    assert (paths["creds"] / "pw").read_bytes() == b"s3cret"
    assert (paths["creds"] / "pw").stat().st_mode & 0o777 == 0o600
    assert (paths["info"] / "labels").read_text() == 'app="web"' and (paths["info"] / "name").read_text() == "p"
    assert paths["scratch"].is_dir()
    await api.patch("v1", "configmaps", "settings", {"data": {"a": "10", "b": None}}, namespace="default")
    await refresh(api, POD, tmp_path)
    assert (paths["cfg"] / "a").read_text() == "10"
    assert not (paths["cfg"] / "b").exists()
    assert (paths["picked"] / "sub" / "renamed").read_text() == "10"
    await api.patch("v1", "configmaps", "settings", {"data": {"c": "3"}}, namespace="default")
    await refresh(api, POD, tmp_path)
    assert (paths["cfg"] / "c").read_text() == "3"
    inode = (paths["cfg"] / "a").stat().st_ino
    await refresh(api, POD, tmp_path)  # nothing changed: files are left alone
    assert (paths["cfg"] / "a").stat().st_ino == inode


async def test_missing_projected_config_map_fails_the_mount_until_it_exists(tmp_path):
    api = FakeApi()
    await api.create("v1", "serviceaccounts", {"metadata": {"name": "default"}}, namespace="default")
    pod = {"metadata": {"name": "p", "namespace": "default", "uid": "u"}, "spec": {"volumes": [
        {"name": "kube-api-access-x", "projected": {"sources": [
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}}]}}
    with pytest.raises(VolumeError) as err:
        await materialise(api, pod, tmp_path)
    assert str(err.value) == ('MountVolume.SetUp failed for volume "kube-api-access-x" : '
                              'configmap "kube-root-ca.crt" not found')
    await api.create("v1", "configmaps", {"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "PEM"}},
                     namespace="default")
    paths = await materialise(api, pod, tmp_path)
    assert (paths["kube-api-access-x"] / "ca.crt").read_text() == "PEM"



async def test_projected_and_optional_sources_follow_their_objects(tmp_path):
    # The kubelet's periodic sync: an optional ConfigMap created later appears in the volume, and
    # a projected volume's configMap/secret sources change with their objects.
    api = FakeApi()
    pod = {"metadata": {"name": "p", "namespace": "default", "uid": "u"}, "spec": {"volumes": [
        {"name": "later", "configMap": {"name": "late", "optional": True}},
        {"name": "all", "projected": {"sources": [
            {"configMap": {"name": "settings", "items": [{"key": "a", "path": "a.conf"}]}},
            {"secret": {"name": "creds", "optional": True}}]}}]}}
    await api.create("v1", "configmaps", {"metadata": {"name": "settings"}, "data": {"a": "1"}}, namespace="default")
    paths = await materialise(api, pod, tmp_path)
    assert list(paths["later"].iterdir()) == [] and (paths["all"] / "a.conf").read_text() == "1"
    assert not (paths["all"] / "pw").exists()
    await api.create("v1", "configmaps", {"metadata": {"name": "late"}, "data": {"k": "v"}}, namespace="default")
    await api.patch("v1", "configmaps", "settings", {"data": {"a": "2"}}, namespace="default")
    await api.create("v1", "secrets", {"metadata": {"name": "creds"}, "data": {"pw": base64.b64encode(b"x").decode()}},
                     namespace="default")
    await refresh(api, pod, tmp_path)
    assert (paths["later"] / "k").read_text() == "v"
    assert (paths["all"] / "a.conf").read_text() == "2" and (paths["all"] / "pw").read_bytes() == b"x"
