"""Tests for the local Hub server (tests/hub_server.py) with the real huggingface_hub client.

The client reads HF_ENDPOINT / HF_HOME / HF_TOKEN / HF_HUB_OFFLINE at import time, so
every client call runs in a fresh interpreter through ``run_hub_client``.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

try:
    from hub_server import HubServer, git_blob_sha1, last_json_line, run_hub_client
except ImportError:  # pragma: no cover - when tests/ is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from hub_server import HubServer, git_blob_sha1, last_json_line, run_hub_client

HERE = Path(__file__).resolve().parent
REPO_ID = "user/vqvae-hub-test"


def _client_code(template: str, *, hash_helpers: bool = False, **variables) -> str:
    """Dedent ``template`` and prepend ``NAME = repr(value)`` lines for ``variables``."""
    header = "".join(f"{name} = {value!r}\n" for name, value in variables.items())
    helpers = _HASH_TREE if hash_helpers else ""
    return header + "import json, hashlib, os\n" + helpers + textwrap.dedent(template)


def _make_model_folder(folder: Path, seed: int = 0) -> dict[str, bytes]:
    rng = random.Random(seed)
    files = {
        "config.json": json.dumps({"name": "vqvae", "latent_dim": 16, "seed": seed}).encode(),
        "metadata.json": json.dumps({"keras_version": "3", "format": "keras-vqvae"}).encode(),
        "model.weights.h5": rng.randbytes(1024 * 1024 + 17),
        "README.md": b"---\nlibrary_name: keras\ntags:\n- vq-vae\n---\n\n# Test VQ-VAE\n",
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def _sha256s(files: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def _no_xet_requests(server: HubServer) -> bool:
    return not any("xet" in path.lower() for _, path in server.requests)


# Reads every file of a snapshot folder and returns {relative path: sha256}.
_HASH_TREE = """
def hash_tree(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root).replace(os.sep, "/")
            with open(p, "rb") as f:
                out[rel] = hashlib.sha256(f.read()).hexdigest()
    return out

def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubServer(tmp_path_factory.mktemp("hub_root")) as server:
        yield server


@pytest.fixture(scope="module")
def uploaded(hub, tmp_path_factory):
    """create_repo + upload_folder (default client config: hf_xet installed => pipelined uploader)."""
    tmp = tmp_path_factory.mktemp("upload")
    files = _make_model_folder(tmp / "model")
    code = _client_code(
        """
        from huggingface_hub import HfApi
        api = HfApi()
        repo_url = api.create_repo(REPO_ID)
        commit = api.upload_folder(repo_id=REPO_ID, folder_path=FOLDER, commit_message="Upload test model")
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
        """,
        REPO_ID=REPO_ID,
        FOLDER=str(tmp / "model"),
    )
    out = last_json_line(run_hub_client(code, hub.url, tmp / "hf_home").stdout)
    return SimpleNamespace(files=files, **out)


def test_upload_folder_creates_commit(hub, uploaded):
    assert uploaded.repo_url == f"{hub.url}/{REPO_ID}"
    assert uploaded.repo_url_id == REPO_ID
    assert len(uploaded.commit) == 40 and int(uploaded.commit, 16) >= 0
    assert uploaded.commit_url == f"{hub.url}/{REPO_ID}/commit/{uploaded.commit}"
    assert uploaded.sha == uploaded.commit
    assert uploaded.siblings == {name: len(data) for name, data in uploaded.files.items()}
    assert sorted(uploaded.repo_files) == sorted(uploaded.files)
    # Server side: stored bytes are identical, main points at the commit.
    assert hub.storage.resolve(REPO_ID, "main") == uploaded.commit
    for name, data in uploaded.files.items():
        assert hub.storage.read_file(REPO_ID, name) == data
    # Regular (base64 NDJSON) upload only: no xet token endpoint was ever hit.
    assert _no_xet_requests(hub)
    paths = [p for _, p in hub.requests]
    assert f"/api/models/{REPO_ID}/preupload/main" in paths
    assert f"/api/models/{REPO_ID}/commit/main" in paths


def test_snapshot_download_and_download_by_commit(hub, uploaded, tmp_path):
    code = _client_code(
        """
        from huggingface_hub import hf_hub_download, snapshot_download
        snap = snapshot_download(REPO_ID)
        by_commit = hf_hub_download(REPO_ID, "model.weights.h5", revision=COMMIT)
        config_main = hf_hub_download(REPO_ID, "config.json")
        print(json.dumps({
            "snapshot": snap,
            "snapshot_files": hash_tree(snap),
            "by_commit": by_commit,
            "by_commit_sha": sha(by_commit),
            "config_main_sha": sha(config_main),
        }))
        """,
        hash_helpers=True,
        REPO_ID=REPO_ID,
        COMMIT=uploaded.commit,
    )
    hf_home = tmp_path / "fresh_hf_home"
    out = last_json_line(run_hub_client(code, hub.url, hf_home).stdout)
    expected = _sha256s(uploaded.files)
    assert out["snapshot_files"] == expected
    assert Path(out["snapshot"]).name == uploaded.commit
    assert Path(out["snapshot"]).is_relative_to(hf_home / "hub")
    assert f"snapshots/{uploaded.commit}/" in out["by_commit"].replace("\\", "/")
    assert out["by_commit_sha"] == expected["model.weights.h5"]
    assert out["config_main_sha"] == expected["config.json"]
    assert _no_xet_requests(hub)


def test_second_upload_moves_main(hub, tmp_path):
    """Second upload => new commit, `main` moves, old commit still downloadable.

    Runs with HF_HUB_DISABLE_XET=1 to also cover the client's legacy `create_commit` path.
    """
    folder = tmp_path / "model"
    files = _make_model_folder(folder, seed=1)
    repo_id = "user/vqvae-two-commits"
    code = _client_code(
        """
        from huggingface_hub import HfApi, hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError
        api = HfApi()
        api.create_repo(REPO_ID)
        api.create_repo(REPO_ID, exist_ok=True)  # no error
        try:
            api.create_repo(REPO_ID)
            conflict = None
        except HfHubHTTPError as e:
            conflict = e.response.status_code
        first = api.upload_folder(repo_id=REPO_ID, folder_path=FOLDER)
        unchanged = api.upload_folder(repo_id=REPO_ID, folder_path=FOLDER)  # no-op => same commit
        with open(os.path.join(FOLDER, "config.json"), "w") as f:
            f.write(NEW_CONFIG)
        second = api.upload_folder(repo_id=REPO_ID, folder_path=FOLDER, commit_message="v2")
        with open(hf_hub_download(REPO_ID, "config.json")) as f:
            main_config = f.read()
        with open(hf_hub_download(REPO_ID, "config.json", revision=first.oid)) as f:
            old_config = f.read()
        print(json.dumps({
            "conflict": conflict,
            "first": first.oid,
            "unchanged": unchanged.oid,
            "second": second.oid,
            "main_sha": api.model_info(REPO_ID).sha,
            "old_sha": api.model_info(REPO_ID, revision=first.oid).sha,
            "main_config": main_config,
            "old_config": old_config,
            "commits": [c.commit_id for c in api.list_repo_commits(REPO_ID)],
            "main_ref": [b.target_commit for b in api.list_repo_refs(REPO_ID).branches if b.name == "main"],
        }))
        """,
        REPO_ID=repo_id,
        FOLDER=str(folder),
        NEW_CONFIG='{"name": "vqvae", "version": 2}',
    )
    out = last_json_line(run_hub_client(code, hub.url, tmp_path / "hf_home", extra_env={"HF_HUB_DISABLE_XET": "1"}).stdout)
    assert out["conflict"] == 409
    assert out["unchanged"] == out["first"]
    assert out["second"] != out["first"]
    assert out["main_sha"] == out["second"] == hub.storage.resolve(repo_id, "main")
    assert out["main_ref"] == [out["second"]]
    assert out["old_sha"] == out["first"]
    assert out["main_config"] == '{"name": "vqvae", "version": 2}'
    assert out["old_config"] == files["config.json"].decode()
    assert out["commits"][:2] == [out["second"], out["first"]]
    assert len(out["commits"]) == 3  # + the empty initial commit
    assert _no_xet_requests(hub)


def test_client_error_types(hub, uploaded, tmp_path):
    code = _client_code(
        """
        from huggingface_hub import HfApi, hf_hub_download, snapshot_download
        from huggingface_hub.errors import (
            EntryNotFoundError, RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError,
        )
        api = HfApi()
        cases = {
            "download_missing_repo": lambda: hf_hub_download("user/does-not-exist", "config.json"),
            "snapshot_missing_repo": lambda: snapshot_download("user/does-not-exist"),
            "info_missing_repo": lambda: api.model_info("user/does-not-exist"),
            "download_missing_file": lambda: hf_hub_download(REPO_ID, "missing.bin"),
            "download_missing_branch": lambda: hf_hub_download(REPO_ID, "config.json", revision="no-such-branch"),
            "download_missing_commit": lambda: hf_hub_download(REPO_ID, "config.json", revision="0" * 40),
            "snapshot_missing_branch": lambda: snapshot_download(REPO_ID, revision="no-such-branch"),
        }
        out = {}
        for name, fn in cases.items():
            try:
                fn()
                out[name] = {"type": None}
            except Exception as e:
                out[name] = {
                    "type": type(e).__name__,
                    "repo_not_found": isinstance(e, RepositoryNotFoundError),
                    "entry_not_found": isinstance(e, EntryNotFoundError),
                    "remote_entry_not_found": isinstance(e, RemoteEntryNotFoundError),
                    "revision_not_found": isinstance(e, RevisionNotFoundError),
                }
        out["file_exists"] = [api.file_exists(REPO_ID, "config.json"), api.file_exists(REPO_ID, "missing.bin")]
        out["repo_exists"] = [api.repo_exists(REPO_ID), api.repo_exists("user/does-not-exist")]
        print(json.dumps(out))
        """,
        REPO_ID=REPO_ID,
    )
    out = last_json_line(run_hub_client(code, hub.url, tmp_path / "hf_home").stdout)
    for case in ("download_missing_repo", "snapshot_missing_repo", "info_missing_repo"):
        assert out[case]["type"] == "RepositoryNotFoundError", (case, out[case])
        assert out[case]["repo_not_found"]
    assert out["download_missing_file"]["type"] == "RemoteEntryNotFoundError"
    assert out["download_missing_file"]["entry_not_found"]
    for case in ("download_missing_branch", "download_missing_commit", "snapshot_missing_branch"):
        assert out[case]["type"] == "RevisionNotFoundError", (case, out[case])
    assert out["file_exists"] == [True, False]
    assert out["repo_exists"] == [True, False]


def test_offline_cache_after_server_stopped(tmp_path):
    files = _make_model_folder(tmp_path / "model", seed=2)
    expected = _sha256s(files)
    repo_id = "user/vqvae-offline"
    hf_home = tmp_path / "hf_home"
    server = HubServer(tmp_path / "hub_root")
    url = server.start()
    try:
        code = _client_code(
            """
            from huggingface_hub import HfApi, snapshot_download
            api = HfApi()
            api.create_repo(REPO_ID)
            commit = api.upload_folder(repo_id=REPO_ID, folder_path=FOLDER)
            print(json.dumps({"commit": commit.oid, "snapshot": snapshot_download(REPO_ID)}))
            """,
            REPO_ID=repo_id,
            FOLDER=str(tmp_path / "model"),
        )
        online = last_json_line(run_hub_client(code, url, hf_home).stdout)
    finally:
        server.stop()
    commit = online["commit"]

    # Server is gone: connections are refused.
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/api/models/{repo_id}", timeout=2)

    # 1. HF_HUB_OFFLINE=1 + filled cache: everything is served from the cache.
    code = _client_code(
        """
        from huggingface_hub import hf_hub_download, snapshot_download
        print(json.dumps({
            "snapshot": snapshot_download(REPO_ID),
            "snapshot_files": hash_tree(snapshot_download(REPO_ID)),
            "weights_main": sha(hf_hub_download(REPO_ID, "model.weights.h5")),
            "config_commit": sha(hf_hub_download(REPO_ID, "config.json", revision=COMMIT)),
        }))
        """,
        hash_helpers=True,
        REPO_ID=repo_id,
        COMMIT=commit,
    )
    offline = last_json_line(run_hub_client(code, url, hf_home, offline=True).stdout)
    assert offline["snapshot"] == online["snapshot"]
    assert offline["snapshot_files"] == expected
    assert offline["weights_main"] == expected["model.weights.h5"]
    assert offline["config_commit"] == expected["config.json"]

    # 2. Not offline, but the server is unreachable: cached snapshot is still returned;
    #    an empty cache raises LocalEntryNotFoundError caused by a connection error.
    #    (hf_hub_download with an empty cache is not tested here: it retries for ~23 s.)
    code = _client_code(
        """
        from huggingface_hub import hf_hub_download, snapshot_download
        out = {"snapshot_files": hash_tree(snapshot_download(REPO_ID)),
               "config_main": sha(hf_hub_download(REPO_ID, "config.json"))}
        try:
            snapshot_download(REPO_ID, cache_dir=EMPTY_CACHE)
        except Exception as e:
            out["empty_cache_error"] = [type(e).__name__, type(e.__cause__).__name__, str(e)]
        print(json.dumps(out))
        """,
        hash_helpers=True,
        REPO_ID=repo_id,
        EMPTY_CACHE=str(tmp_path / "empty_cache"),
    )
    unreachable = last_json_line(run_hub_client(code, url, hf_home).stdout)
    assert unreachable["snapshot_files"] == expected
    assert unreachable["config_main"] == expected["config.json"]
    err_type, cause_type, message = unreachable["empty_cache_error"]
    assert err_type == "LocalEntryNotFoundError"
    assert cause_type == "ConnectError" and "ConnectError" in message

    # 3. HF_HUB_OFFLINE=1 + empty cache: LocalEntryNotFoundError caused by OfflineModeIsEnabled.
    code = _client_code(
        """
        from huggingface_hub import hf_hub_download, snapshot_download
        out = {}
        for name, fn in {
            "hf_hub_download": lambda: hf_hub_download(REPO_ID, "config.json"),
            "snapshot_download": lambda: snapshot_download(REPO_ID),
        }.items():
            try:
                fn()
                out[name] = None
            except Exception as e:
                out[name] = [type(e).__name__, type(e.__cause__).__name__, isinstance(e, OSError)]
        print(json.dumps(out))
        """,
        REPO_ID=repo_id,
    )
    empty = last_json_line(run_hub_client(code, url, tmp_path / "empty_hf_home", offline=True).stdout)
    assert empty["hf_hub_download"] == ["LocalEntryNotFoundError", "OfflineModeIsEnabled", True]
    assert empty["snapshot_download"] == ["LocalEntryNotFoundError", "OfflineModeIsEnabled", True]


def _http(method: str, url: str, headers: dict | None = None, data: bytes | None = None):
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_raw_http_contract(hub, uploaded):
    """What the client relies on, checked without the client."""
    weights = uploaded.files["model.weights.h5"]
    resolve = f"{hub.url}/{REPO_ID}/resolve"

    status, headers, body = _http("HEAD", f"{resolve}/main/model.weights.h5")
    assert status == 200 and body == b""
    assert headers["X-Repo-Commit"] == uploaded.commit
    assert headers["ETag"] == f'"{git_blob_sha1(weights)}"'
    assert int(headers["Content-Length"]) == len(weights)
    assert not [k for k in headers if k.lower().startswith("x-xet")]
    assert "xet-auth" not in (headers.get("Link") or "")

    status, headers, body = _http("GET", f"{resolve}/{uploaded.commit}/model.weights.h5", {"Range": "bytes=10-19"})
    assert status == 206 and body == weights[10:20]
    assert headers["Content-Range"] == f"bytes 10-19/{len(weights)}"

    for url, code in [
        (f"{hub.url}/user/nope/resolve/main/config.json", "RepoNotFound"),
        (f"{resolve}/nope/config.json", "RevisionNotFound"),
        (f"{resolve}/main/nope.json", "EntryNotFound"),
        (f"{hub.url}/api/models/user/nope", "RepoNotFound"),
        (f"{hub.url}/api/models/{REPO_ID}/revision/nope", "RevisionNotFound"),
    ]:
        status, headers, _ = _http("HEAD" if "/resolve/" in url else "GET", url)
        assert (status, headers.get("X-Error-Code")) == (404, code), url
    _, headers, _ = _http("HEAD", f"{resolve}/main/nope.json")
    assert headers["X-Repo-Commit"] == uploaded.commit

    # Writes need a (any) bearer token.
    status, _, _ = _http("POST", f"{hub.url}/api/repos/create", {"Content-Type": "application/json"}, b'{"name": "x"}')
    assert status == 401


def test_cli_entrypoint_serves_existing_root(tmp_path):
    """`python tests/hub_server.py --root DIR --port 0` serves a root seeded through HubStorage."""
    seed = HubServer(tmp_path / "root")  # not started: only used to seed storage
    seed.storage.create_repo("user/seeded")
    commit, _ = seed.storage.commit("user/seeded", add={"config.json": b"{}"}, summary="seed")

    proc = subprocess.Popen(
        [sys.executable, str(HERE / "hub_server.py"), "--root", str(tmp_path / "root"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("Serving local Hugging Face Hub on http://127.0.0.1:"), line
        url = line.split(" on ", 1)[1].split()[0]
        status, _, body = _http("GET", f"{url}/api/models/user/seeded")
        assert status == 200
        info = json.loads(body)
        assert info["sha"] == commit and info["siblings"] == [{"rfilename": "config.json"}]
        status, _, body = _http("GET", f"{url}/api/whoami-v2", {"Authorization": "Bearer anything"})
        assert status == 200 and json.loads(body)["name"] == "user"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
