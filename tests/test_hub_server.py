"""Tests of tests/hub_server.py, the local Hub, with the real client.

The client reads HF_ENDPOINT / HF_HOME / HF_TOKEN / HF_HUB_OFFLINE at import
time, so every client call runs in a fresh interpreter (`run_hub_client`).
"""

import hashlib
import json
import random
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from hub_server import HubServer
from hub_server import HubStorage
from hub_server import git_blob_sha1
from hub_server import hub_client_env
from hub_server import run_hub_client

REPO_ID = "user/vqvae-hub-test"

# Start of every client script: sha256 of a file, and of every file in a tree.
_CLIENT_HELPERS = """
import hashlib, json, os

def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()

def hash_tree(root):
    paths = [os.path.join(d, n) for d, _, ns in os.walk(root) for n in ns]
    names = [os.path.relpath(p, root).replace(os.sep, "/") for p in paths]
    return {name: sha(path) for name, path in zip(names, paths)}
"""


def _client(code, **variables):
    """The helpers, a `NAME = repr(value)` line per variable, then `code`."""
    lines = [f"{name} = {value!r}" for name, value in variables.items()]
    return _CLIENT_HELPERS + "\n".join(lines) + "\n" + code


def _make_model_folder(folder, seed=0):
    files = {
        "config.json": b'{"name": "vqvae", "seed": %d}' % seed,
        "metadata.json": b'{"keras_version": "3"}',
        "model.weights.h5": random.Random(seed).randbytes(1024 * 1024 + 17),
        "README.md": b"---\nlibrary_name: keras\n---\n\n# Test VQ-VAE\n",
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def _sha256s(files):
    return {
        name: hashlib.sha256(data).hexdigest() for name, data in files.items()
    }


def _no_xet_requests(server):
    return not any("xet" in path.lower() for _, path in server.requests)


def _http(method, url, headers=None, data=None):
    request = urllib.request.Request(url, data, headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubServer(tmp_path_factory.mktemp("hub_root")) as server:
        yield server


@pytest.fixture(scope="module")
def uploaded(hub, tmp_path_factory):
    """create_repo + upload_folder; hf_xet is installed: pipelined uploader."""
    tmp = tmp_path_factory.mktemp("upload")
    files = _make_model_folder(tmp / "model")
    code = """
from huggingface_hub import HfApi
api = HfApi()
repo_url = api.create_repo(REPO_ID)
commit = api.upload_folder(repo_id=REPO_ID, folder_path=FOLDER)
info = api.model_info(REPO_ID, files_metadata=True)
print(json.dumps({
    "repo_url": str(repo_url),
    "repo_url_id": repo_url.repo_id,
    "commit": commit.oid,
    "commit_url": commit.commit_url,
    "sha": info.sha,
    "siblings": {s.rfilename: s.size for s in info.siblings},
    "repo_files": api.list_repo_files(REPO_ID),
}))
"""
    code = _client(code, REPO_ID=REPO_ID, FOLDER=str(tmp / "model"))
    out = run_hub_client(code, hub.url, tmp / "hf_home")
    return SimpleNamespace(files=files, **out)


def test_upload_folder_creates_commit(hub, uploaded):
    assert uploaded.repo_url == f"{hub.url}/{REPO_ID}"
    assert uploaded.repo_url_id == REPO_ID
    assert len(uploaded.commit) == 40 and int(uploaded.commit, 16) >= 0
    commit_url = f"{hub.url}/{REPO_ID}/commit/{uploaded.commit}"
    assert uploaded.commit_url == commit_url
    assert uploaded.sha == uploaded.commit
    sizes = {name: len(data) for name, data in uploaded.files.items()}
    assert uploaded.siblings == sizes
    assert sorted(uploaded.repo_files) == sorted(uploaded.files)
    # Server side: stored bytes are identical, main points at the commit.
    assert hub.storage.resolve(REPO_ID, "main") == uploaded.commit
    for name, data in uploaded.files.items():
        assert hub.storage.read_file(REPO_ID, name) == data
    # Regular (base64 NDJSON) upload only: no Xet endpoint was ever hit.
    assert _no_xet_requests(hub)
    paths = [path for _, path in hub.requests]
    assert f"/api/models/{REPO_ID}/preupload/main" in paths
    assert f"/api/models/{REPO_ID}/commit/main" in paths


def test_snapshot_download_and_download_by_commit(hub, uploaded, tmp_path):
    code = """
from huggingface_hub import hf_hub_download, snapshot_download
snapshot = snapshot_download(REPO_ID, allow_patterns=["*.json", "*.h5", "*.md"])
by_commit = hf_hub_download(REPO_ID, "model.weights.h5", revision=COMMIT)
print(json.dumps({
    "snapshot": snapshot,
    "snapshot_files": hash_tree(snapshot),
    "pinned": snapshot_download(REPO_ID, revision=COMMIT),
    "by_commit": by_commit,
    "by_commit_sha": sha(by_commit),
    "config_main_sha": sha(hf_hub_download(REPO_ID, "config.json")),
}))
"""
    code = _client(code, REPO_ID=REPO_ID, COMMIT=uploaded.commit)
    hf_home = tmp_path / "fresh_hf_home"
    out = run_hub_client(code, hub.url, hf_home)
    expected = _sha256s(uploaded.files)
    assert out["snapshot_files"] == expected
    assert Path(out["snapshot"]).name == uploaded.commit
    assert Path(out["snapshot"]).is_relative_to(hf_home / "hub")
    assert out["pinned"] == out["snapshot"]
    by_commit = out["by_commit"].replace("\\", "/")
    assert f"snapshots/{uploaded.commit}/" in by_commit
    assert out["by_commit_sha"] == expected["model.weights.h5"]
    assert out["config_main_sha"] == expected["config.json"]
    assert _no_xet_requests(hub)


def test_second_upload_moves_main(hub, tmp_path):
    """Second upload => new commit, `main` moves, old commit still there.

    Runs with HF_HUB_DISABLE_XET=1 to also cover the client's legacy
    `create_commit` path.
    """
    folder = tmp_path / "model"
    files = _make_model_folder(folder, seed=1)
    repo_id = "user/vqvae-two-commits"
    new_config = '{"name": "vqvae", "version": 2}'
    code = """
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError
api = HfApi()
api.create_repo(REPO_ID, private=True)
api.create_repo(REPO_ID, exist_ok=True)  # no error
try:
    api.create_repo(REPO_ID)
    conflict = None
except HfHubHTTPError as e:
    conflict = e.response.status_code
first = api.upload_folder(repo_id=REPO_ID, folder_path=FOLDER)
unchanged = api.upload_folder(repo_id=REPO_ID, folder_path=FOLDER)  # no-op
with open(os.path.join(FOLDER, "config.json"), "w") as f:
    f.write(NEW_CONFIG)
second = api.upload_folder(repo_id=REPO_ID, folder_path=FOLDER)
old = hf_hub_download(REPO_ID, "config.json", revision=first.oid)
print(json.dumps({
    "conflict": conflict,
    "first": first.oid,
    "unchanged": unchanged.oid,
    "second": second.oid,
    "main_sha": api.model_info(REPO_ID).sha,
    "old_sha": api.model_info(REPO_ID, revision=first.oid).sha,
    "private": api.model_info(REPO_ID).private,
    "main_config": sha(hf_hub_download(REPO_ID, "config.json")),
    "old_config": sha(old),
}))
"""
    code = _client(
        code, REPO_ID=repo_id, FOLDER=str(folder), NEW_CONFIG=new_config
    )
    no_xet = {"HF_HUB_DISABLE_XET": "1"}
    out = run_hub_client(code, hub.url, tmp_path / "hf_home", extra_env=no_xet)
    assert out["conflict"] == 409
    assert out["unchanged"] == out["first"] != out["second"]
    assert out["main_sha"] == out["second"]
    assert out["main_sha"] == hub.storage.resolve(repo_id, "main")
    assert out["old_sha"] == out["first"]
    assert out["private"] is True
    new_sha = hashlib.sha256(new_config.encode()).hexdigest()
    assert out["main_config"] == new_sha
    assert out["old_config"] == _sha256s(files)["config.json"]
    # History: second -> first -> the empty initial commit.
    second = hub.storage.get_commit(repo_id, out["second"])
    assert second["parents"] == [out["first"]]
    (initial,) = hub.storage.get_commit(repo_id, out["first"])["parents"]
    initial = hub.storage.get_commit(repo_id, initial)
    assert (initial["parents"], initial["files"]) == ([], {})
    assert _no_xet_requests(hub)


def test_client_error_types(hub, uploaded, tmp_path):
    code = """
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError
api = HfApi()
MISSING = "user/does-not-exist"
cases = {
    "download_missing_repo": lambda: hf_hub_download(MISSING, "config.json"),
    "snapshot_missing_repo": lambda: snapshot_download(MISSING),
    "info_missing_repo": lambda: api.model_info(MISSING),
    "download_missing_file": lambda: hf_hub_download(REPO_ID, "missing.bin"),
    "download_missing_branch":
        lambda: hf_hub_download(REPO_ID, "config.json", revision="nope"),
    "download_missing_commit":
        lambda: hf_hub_download(REPO_ID, "config.json", revision="0" * 40),
    "snapshot_missing_branch":
        lambda: snapshot_download(REPO_ID, revision="nope"),
}
out = {}
for name, fn in cases.items():
    try:
        fn()
        out[name] = None
    except Exception as e:
        out[name] = [type(e).__name__, isinstance(e, EntryNotFoundError)]
out["file_exists"] = [
    api.file_exists(REPO_ID, "config.json"),
    api.file_exists(REPO_ID, "missing.bin"),
]
out["repo_exists"] = [api.repo_exists(REPO_ID), api.repo_exists(MISSING)]
print(json.dumps(out))
"""
    out = run_hub_client(_client(code, REPO_ID=REPO_ID), hub.url, tmp_path)
    for case in ("download", "snapshot", "info"):
        assert out[f"{case}_missing_repo"] == ["RepositoryNotFoundError", False]
    assert out["download_missing_file"] == ["RemoteEntryNotFoundError", True]
    for case in ("download_missing_branch", "download_missing_commit"):
        assert out[case] == ["RevisionNotFoundError", False], case
    assert out["snapshot_missing_branch"] == ["RevisionNotFoundError", False]
    assert out["file_exists"] == [True, False]
    assert out["repo_exists"] == [True, False]


def test_offline_cache_after_server_stopped(tmp_path):
    expected = _sha256s(_make_model_folder(tmp_path / "model", seed=2))
    repo_id = "user/vqvae-offline"
    hf_home = tmp_path / "hf_home"
    code = """
from huggingface_hub import HfApi, snapshot_download
HfApi().create_repo(REPO_ID)
commit = HfApi().upload_folder(repo_id=REPO_ID, folder_path=FOLDER)
snapshot = snapshot_download(REPO_ID)
print(json.dumps({"commit": commit.oid, "snapshot": snapshot}))
"""
    code = _client(code, REPO_ID=repo_id, FOLDER=str(tmp_path / "model"))
    with HubServer(tmp_path / "hub_root") as server:
        online = run_hub_client(code, server.url, hf_home)
    with pytest.raises(urllib.error.URLError):  # connection refused
        urllib.request.urlopen(f"{server.url}/api/models/{repo_id}", timeout=2)

    # The filled cache serves all; an empty one raises LocalEntryNotFoundError.
    # (Not hf_hub_download, empty cache, online: it retries for ~23 s.)
    code = """
from huggingface_hub import hf_hub_download, snapshot_download

def error(fn):
    try:
        fn()
    except Exception as e:
        return [type(e).__name__, type(e.__cause__).__name__]

config = hf_hub_download(REPO_ID, "config.json", revision=COMMIT)
empty = error(lambda: snapshot_download(REPO_ID, cache_dir=EMPTY))
out = {
    "snapshot": snapshot_download(REPO_ID),
    "snapshot_files": hash_tree(snapshot_download(REPO_ID)),
    "weights_main": sha(hf_hub_download(REPO_ID, "model.weights.h5")),
    "config_commit": sha(config),
    "empty_snapshot": empty,
}
if os.environ.get("HF_HUB_OFFLINE"):
    out["empty_download"] = error(
        lambda: hf_hub_download(REPO_ID, "config.json", cache_dir=EMPTY)
    )
print(json.dumps(out))
"""
    empty = str(tmp_path / "empty")
    code = _client(code, REPO_ID=repo_id, COMMIT=online["commit"], EMPTY=empty)
    for offline in (True, False):
        out = run_hub_client(code, server.url, hf_home, offline=offline)
        assert out["snapshot"] == online["snapshot"]
        assert out["snapshot_files"] == expected
        assert out["weights_main"] == expected["model.weights.h5"]
        assert out["config_commit"] == expected["config.json"]
        cause = "OfflineModeIsEnabled" if offline else "ConnectError"
        assert out["empty_snapshot"] == ["LocalEntryNotFoundError", cause]
        if offline:
            assert out["empty_download"] == ["LocalEntryNotFoundError", cause]


def test_raw_http_contract(hub, uploaded):
    """What the client relies on, checked without the client."""
    weights = uploaded.files["model.weights.h5"]
    etag = f'"{git_blob_sha1(weights)}"'
    resolve = f"{hub.url}/{REPO_ID}/resolve"

    status, headers, body = _http("HEAD", f"{resolve}/main/model.weights.h5")
    assert (status, body, headers["ETag"]) == (200, b"", etag)
    assert headers["X-Repo-Commit"] == uploaded.commit
    assert int(headers["Content-Length"]) == len(weights)
    assert not [k for k in headers if k.lower().startswith("x-xet")]
    assert "xet-auth" not in (headers.get("Link") or "")
    url = f"{resolve}/{uploaded.commit}/model.weights.h5"
    status, headers, body = _http("GET", url)
    assert (status, body, headers["ETag"]) == (200, weights, etag)

    for method, url, code in [
        ("HEAD", f"{hub.url}/user/nope/resolve/main/a.json", "RepoNotFound"),
        ("HEAD", f"{resolve}/nope/config.json", "RevisionNotFound"),
        ("HEAD", f"{resolve}/main/nope.json", "EntryNotFound"),
        ("GET", f"{hub.url}/api/models/user/nope", "RepoNotFound"),
        (
            "GET",
            f"{hub.url}/api/models/{REPO_ID}/revision/no",
            "RevisionNotFound",
        ),
    ]:
        status, headers, _ = _http(method, url)
        assert (status, headers.get("X-Error-Code")) == (404, code), url
    _, headers, _ = _http("HEAD", f"{resolve}/main/nope.json")
    assert headers["X-Repo-Commit"] == uploaded.commit

    # Writes need a (any) bearer token.
    create = f"{hub.url}/api/repos/create"
    status, _, _ = _http("POST", create, data=b'{"name": "x"}')
    assert status == 401


def test_concurrent_commits_are_all_kept(tmp_path):
    storage = HubStorage(tmp_path / "root")
    storage.create_repo("user/busy")
    adds = [{f"{i}.json": b"%d" % i} for i in range(8)]
    commit = storage.commit
    threads = [
        threading.Thread(target=commit, args=("user/busy", add)) for add in adds
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    files = storage.files("user/busy")
    assert files.keys() == {f"{i}.json" for i in range(8)}
    assert storage.read_file("user/busy", "3.json") == b"3"
    assert not list((tmp_path / "root").rglob("*.tmp"))


def test_cli_serves_an_existing_root(tmp_path):
    """`python tests/hub_server.py --root DIR` serves what HubStorage wrote."""
    seed = HubStorage(tmp_path / "root")
    seed.create_repo("user/seeded")
    commit = seed.commit("user/seeded", {"config.json": b"{}"}, "seed")
    script = Path(__file__).with_name("hub_server.py")
    command = [sys.executable, script, "--root", tmp_path / "root"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        prefix = "Serving local Hugging Face Hub on http://127.0.0.1:"
        assert line.startswith(prefix), line
        url = line.split()[6]
        status, _, body = _http("GET", f"{url}/api/models/user/seeded")
        assert status == 200
        info = json.loads(body)
        assert info["sha"] == commit
        blob_id = git_blob_sha1(b"{}")
        sibling = {"rfilename": "config.json", "size": 2, "blobId": blob_id}
        assert info["siblings"] == [sibling]
        auth = {"Authorization": "Bearer anything"}
        status, _, body = _http("GET", f"{url}/api/whoami-v2", auth)
        assert status == 200 and json.loads(body)["name"] == "user"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()


@pytest.mark.slow
def test_invalid_model_card_metadata_is_refused_like_the_hub(hub, tmp_path):
    """The Hub validates README.md metadata on commit; so does this server."""
    folder = tmp_path / "bad_card"
    folder.mkdir()
    (folder / "README.md").write_text(
        "---\nmodel-index:\n- name: x\n  results:\n  - task: {type: image-to-image}\n"
        "    metrics:\n    - {type: psnr, value: 25.0}\n---\n# no dataset\n"
    )
    (folder / "config.json").write_text("{}")
    script = f"""
from huggingface_hub import HfApi
api = HfApi()
api.create_repo("user/bad-card", exist_ok=True)
try:
    api.upload_folder(repo_id="user/bad-card", folder_path={str(folder)!r})
except Exception as e:
    print("REFUSED", type(e).__name__, e)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=hub_client_env(hub.url, tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "REFUSED" in result.stdout, result.stdout + result.stderr[-2000:]
    assert "Invalid metadata in README.md" in result.stdout
