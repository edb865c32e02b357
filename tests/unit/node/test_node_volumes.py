"""Volume files under the pod dir, against the in-memory FakeApi."""

import base64

from knet.client.fake import FakeApi
from knet.node.volumes import materialise, refresh

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
