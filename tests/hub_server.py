"""A loopback look-alike of the Hugging Face Hub HTTP API, for tests.

The real `huggingface_hub` client (tested with 2.4.0) talks to it when
`HF_ENDPOINT` is `HubServer.url`. The client reads `HF_*` variables at import
time, so tests run client code in a fresh interpreter:
`run_hub_client(code, server.url, hf_home)`.

It serves model repos, and only the requests of the client calls made by
keras-vqvae (`presets.download_from_hub`, `upload.upload_preset`, the
`publish_a_preset` guide) and its tests, which are:

- `snapshot_download(repo_id, revision=..., allow_patterns=...)`:
  GET /api/models/{repo_id}/revision/{revision} (the commit),
  GET /api/models/{repo_id}/tree/{commit} (the files), then each file as
  `hf_hub_download` gets it, by commit.
- `hf_hub_download`, `HfApi.file_exists`:
  HEAD and GET /{repo_id}/resolve/{revision}/{path}.
- `HfApi.repo_exists`, `HfApi.model_info`:
  GET /api/models/{repo_id}[/revision/{revision}].
- `HfApi.list_repo_files`: GET /api/models/{repo_id}/tree/{revision}.
- `HfApi.create_repo(private=..., exist_ok=...)`: POST /api/repos/create.
- `HfApi.upload_folder`: POST /api/validate-yaml (if there is a README.md),
  POST /api/models/{repo_id}/preupload/{revision},
  POST /api/models/{repo_id}/commit/{revision}.
- `HfApi.whoami`: GET /api/whoami-v2.

What the client relies on:

- Errors are 404s whose `X-Error-Code` header picks the client's exception:
  `RepoNotFound` -> `RepositoryNotFoundError`, `RevisionNotFound` ->
  `RevisionNotFoundError`, `EntryNotFound` -> `RemoteEntryNotFoundError` (an
  `EntryNotFoundError`). `EntryNotFound` answers carry `X-Repo-Commit`, so the
  client caches that the file does not exist.
- Writes and `whoami` need an `Authorization: Bearer <any token>` header,
  else 401.
- Every file is a regular git blob: preupload answers `uploadMode: "regular"`
  (no LFS, no Xet), the commit carries the contents base64-encoded, and a
  file's oid and `ETag` are its git blob SHA-1, from which the client skips
  unchanged files.
- Unexpected failures answer 400, never 5xx, which the client retries with a
  slow backoff. Other routes answer 404. `HubServer.requests` records every
  request.

Storage, written atomically (temporary file + `os.replace`) under a lock, so
concurrent clients are safe and a new server on the same folder serves the
same repos:

    {root}/{owner}/{name}/repo.json       {"private", "branches": {name: id}}
    {root}/{owner}/{name}/commits/{id}.json  {"id", "parents", "files", ...}
    {root}/{owner}/{name}/objects/{oid}   file contents

Command line (prints the URL on its first line of output):

    python tests/hub_server.py --root DIR [--port PORT]
"""

import argparse
import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote
from urllib.parse import urlsplit

DEFAULT_USERNAME = "user"
DEFAULT_TOKEN = "hf_local_test_token_0000000000000000"

_NAME = r"[A-Za-z0-9][\w.-]*"
_REPO_ID = re.compile(rf"(?!.*\.\.){_NAME}/{_NAME}", re.ASCII)
_COMMIT_ID = re.compile(r"[0-9a-f]{40}")


def git_blob_sha1(data):
    """The git blob id of `data`: the Hub's oid and ETag of a regular file.

    Args:
        data: the file contents, bytes.

    Returns:
        40 hexadecimal digits.
    """
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _write(path, data):
    """Writes `data` (bytes) to `path` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    tmp = path.with_name(tmp)
    tmp.write_bytes(data)
    os.replace(tmp, path)


class HubError(Exception):
    """An error answered over HTTP.

    Args:
        status: the HTTP status.
        message: the `error` field of the JSON answer.
        code: the `X-Error-Code` header: it selects the client's exception.
        headers: more response headers.
    """

    def __init__(self, status, message, code=None, headers=None):
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers or {}


class HubStorage:
    """Model repos in a folder; thread-safe. Tests may seed repos through it.

    Args:
        root: the folder holding the repos (created if missing).
    """

    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def exists(self, repo_id):
        """Whether the repo `repo_id` ("owner/name") exists."""
        valid = _REPO_ID.fullmatch(repo_id)
        return bool(valid) and (self.root / repo_id / "repo.json").is_file()

    def metadata(self, repo_id):
        """The repo's `{"private": bool, "branches": {name: commit id}}`."""
        if not self.exists(repo_id):
            message = f"Repository not found: {repo_id}"
            raise HubError(404, message, "RepoNotFound")
        return json.loads((self.root / repo_id / "repo.json").read_bytes())

    def create_repo(self, repo_id, private=False):
        """Creates a repo whose `main` branch is an empty commit.

        Returns:
            False if the repo already existed (it is left as it was).
        """
        if not _REPO_ID.fullmatch(repo_id):
            raise HubError(400, f"Invalid repo id: {repo_id!r}")
        with self._lock:
            if self.exists(repo_id):
                return False
            commit_id = self._store_commit(repo_id, [], {}, "initial commit")
            self._store_metadata(repo_id, bool(private), {"main": commit_id})
            return True

    def resolve(self, repo_id, revision="main"):
        """The commit id of a branch name or a commit id."""
        branches = self.metadata(repo_id)["branches"]
        if revision in branches:
            return branches[revision]
        commit_file = self._commit_file(repo_id, revision)
        if _COMMIT_ID.fullmatch(revision) and commit_file.is_file():
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def get_commit(self, repo_id, revision="main"):
        """The commit at `revision`.

        Returns:
            a dict with `id`, `parents` (commit ids), `files` (as `files`
            returns them), `summary`, `description` and `date`.
        """
        commit_id = self.resolve(repo_id, revision)
        return json.loads(self._commit_file(repo_id, commit_id).read_bytes())

    def files(self, repo_id, revision="main"):
        """`{path: {"oid": git blob SHA-1, "size": bytes}}` at `revision`."""
        return self.get_commit(repo_id, revision)["files"]

    def read_file(self, repo_id, path, revision="main"):
        """The contents (bytes) of the file `path` at `revision`."""
        entry = self.files(repo_id, revision).get(path)
        if entry is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        return (self.root / repo_id / "objects" / entry["oid"]).read_bytes()

    def commit(self, repo_id, add, summary="", description="", branch="main"):
        """Adds or replaces files on a branch, in one new commit.

        Args:
            repo_id: an existing repo.
            add: `{path in the repo: bytes}`.
            summary: the commit title.
            description: the commit message body.
            branch: an existing branch.

        Returns:
            the new commit id.
        """
        with self._lock:
            metadata = self.metadata(repo_id)
            head = metadata["branches"].get(branch)
            if head is None:
                message = f"Invalid rev id: {branch}"
                raise HubError(404, message, "RevisionNotFound")
            files = self.files(repo_id, head)
            for path, data in add.items():
                if {"", ".", ".."} & set(path.split("/")):
                    raise HubError(400, f"Invalid path in repo: {path!r}")
                oid = git_blob_sha1(data)
                _write(self.root / repo_id / "objects" / oid, data)
                files[path] = {"oid": oid, "size": len(data)}
            commit_id = self._store_commit(
                repo_id, [head], files, summary, description
            )
            metadata["branches"][branch] = commit_id
            self._store_metadata(repo_id, **metadata)
            return commit_id

    def _commit_file(self, repo_id, commit_id):
        return self.root / repo_id / "commits" / f"{commit_id}.json"

    def _store_commit(self, repo_id, parents, files, summary, description=""):
        commit = {
            "parents": parents,
            "files": dict(sorted(files.items())),
            "summary": summary,
            "description": description,
            "date": time.time(),
        }
        content = json.dumps(commit, sort_keys=True).encode()
        commit_id = hashlib.sha1(content).hexdigest()
        content = json.dumps({"id": commit_id, **commit}).encode()
        _write(self._commit_file(repo_id, commit_id), content)
        return commit_id

    def _store_metadata(self, repo_id, private, branches):
        content = json.dumps({"private": private, "branches": branches})
        _write(self.root / repo_id / "repo.json", content.encode())


_REPO = r"(?P<repo_id>[^/]+/[^/]+)"
# The client percent-encodes the "/" of revisions such as "refs/pr/1".
_REV = r"(?P<revision>[^/]+)"
# (methods, path pattern, `_Handler` method): the whole API served.
_ROUTES = [
    (("GET",), r"/api/whoami-v2", "whoami"),
    (("POST",), r"/api/validate-yaml", "validate_yaml"),
    (("POST",), r"/api/repos/create", "create_repo"),
    (("GET",), rf"/api/models/{_REPO}(/revision/{_REV})?", "repo_info"),
    (("GET",), rf"/api/models/{_REPO}/tree/{_REV}", "tree"),
    (("POST",), rf"/api/models/{_REPO}/preupload/{_REV}", "preupload"),
    (("POST",), rf"/api/models/{_REPO}/commit/{_REV}", "commit"),
    (("GET", "HEAD"), rf"/{_REPO}/resolve/{_REV}/(?P<path>.+)", "resolve"),
]
_ROUTES = [(methods, re.compile(path), name) for methods, path, name in _ROUTES]


class _Handler(BaseHTTPRequestHandler):
    # One request per connection: nothing lingers once the server is stopped.
    protocol_version = "HTTP/1.0"

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        hub = self.server.hub
        hub.requests.append((self.command, self.path))
        path = urlsplit(self.path).path
        # Read the whole request first: then even early errors reach the client.
        size = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(size)
        try:
            for methods, pattern, name in _ROUTES:
                match = pattern.fullmatch(path)
                if match and self.command in methods:
                    args = match.groupdict()
                    args = {k: unquote(v) for k, v in args.items() if v}
                    return getattr(self, name)(hub.storage, **args)
            message = f"Not served by the local hub: {self.command} {path}"
            raise HubError(404, message)
        except HubError as e:
            headers = {"X-Error-Code": e.code} if e.code else {}
            error = {"error": str(e)}
            self._send_json(error, e.status, {**headers, **e.headers})
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:
            traceback.print_exc()
            self._send_json({"error": f"Local hub failure: {e!r}"}, 400)

    do_HEAD = do_POST = do_GET

    def _send(self, status, body=b"", headers=None):
        self.send_response(status)
        headers = {"Content-Length": str(len(body)), **(headers or {})}
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, value, status=200, headers=None):
        headers = {"Content-Type": "application/json", **(headers or {})}
        self._send(status, json.dumps(value).encode(), headers)

    def _require_token(self):
        auth = self.headers.get("Authorization", "")
        if not re.fullmatch(r"Bearer \S+", auth):
            raise HubError(401, "Invalid credentials in Authorization header")

    # The routes, in the order of `_ROUTES`.

    def whoami(self, storage):
        self._require_token()
        self._send_json({"type": "user", "name": DEFAULT_USERNAME})

    def validate_yaml(self, storage):
        # The body is {"content": the README.md text, "repoType": "model"}.
        # As the Hub does, refuse a card whose metadata does not parse
        # (huggingface_hub's own ModelCard checks the model-index): a 400
        # with {"errors": [{"message": ...}]}, which the client raises as a
        # ValueError.
        from huggingface_hub import ModelCard

        content = json.loads(self.body or b"{}").get("content", "")
        try:
            ModelCard(content)
        except Exception as e:
            message = f"Invalid metadata in README.md: {type(e).__name__}: {e}"
            self._send_json({"errors": [{"message": message}]}, status=400)
            return
        self._send_json({"errors": [], "warnings": []})

    def create_repo(self, storage):
        self._require_token()
        request = json.loads(self.body)
        if request.get("type", "model") != "model":
            raise HubError(400, "The local hub serves model repos only")
        owner = request.get("organization") or DEFAULT_USERNAME
        repo_id = f"{owner}/{request['name']}"
        private = request.get("visibility") == "private"
        answer = {"url": f"{self.server.hub.url}/{repo_id}"}
        if storage.create_repo(repo_id, private=private):
            return self._send_json(answer)
        # With exist_ok=True, the client reads the url from this 409.
        answer["error"] = f"You already created this repo: {repo_id}"
        self._send_json(answer, 409)

    def repo_info(self, storage, repo_id, revision="main"):
        commit = storage.get_commit(repo_id, revision)
        siblings = [
            {"rfilename": path, "size": entry["size"], "blobId": entry["oid"]}
            for path, entry in commit["files"].items()
        ]
        private = storage.metadata(repo_id)["private"]
        info = {"id": repo_id, "sha": commit["id"], "private": private}
        self._send_json({**info, "siblings": siblings})

    def tree(self, storage, repo_id, revision):
        # All files, as if recursive: no folder entries (presets are flat).
        files = storage.files(repo_id, revision).items()
        self._send_json([{"type": "file", "path": p, **e} for p, e in files])

    def preupload(self, storage, repo_id, revision):
        self._require_token()
        files = storage.files(repo_id, revision)
        answer = [
            {
                "path": f["path"],
                "uploadMode": "regular",
                "shouldIgnore": False,
                "oid": files.get(f["path"], {}).get("oid"),
            }
            for f in json.loads(self.body)["files"]
        ]
        self._send_json({"files": answer})

    def commit(self, storage, repo_id, revision):
        # The NDJSON body: a "header" line, then a base64 "file" line per file.
        self._require_token()
        if "create_pr" in urlsplit(self.path).query:
            raise HubError(400, "The local hub cannot open pull requests")
        header, add = {}, {}
        for line in self.body.splitlines():
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file" and value.get("encoding") == "base64":
                add[value["path"]] = base64.b64decode(value["content"])
            else:
                raise HubError(400, f"The local hub cannot commit {key!r}")
        commit_id = storage.commit(
            repo_id,
            add,
            header.get("summary", ""),
            header.get("description", ""),
            branch=revision,
        )
        url = f"{self.server.hub.url}/{repo_id}/commit/{commit_id}"
        answer = {"success": True, "commitOid": commit_id, "commitUrl": url}
        self._send_json(answer)

    def resolve(self, storage, repo_id, revision, path):
        commit = storage.get_commit(repo_id, revision)
        entry = commit["files"].get(path)
        headers = {"X-Repo-Commit": commit["id"]}
        if entry is None:
            message = f"Entry not found: {path}"
            raise HubError(404, message, "EntryNotFound", headers)
        headers["ETag"] = f'"{entry["oid"]}"'
        if self.command == "HEAD":
            headers["Content-Length"] = str(entry["size"])
            return self._send(200, b"", headers)
        data = storage.read_file(repo_id, path, commit["id"])
        self._send(200, data, headers)


class HubServer:
    """The local Hub: `HubStorage(root)` served on a loopback port.

    `start()` serves in a background thread; `stop()` closes the port
    (clients then get "connection refused"). Also a context manager:
    `with HubServer(tmp_path / "hub") as server: ...`.

    Args:
        root: the storage folder.
        port: the port to listen on; 0 picks a free one.

    Attributes:
        storage: the `HubStorage`.
        url: `"http://127.0.0.1:PORT"` once started: the `HF_ENDPOINT`.
        requests: `(method, path with query)` of every request received.
    """

    def __init__(self, root, port=0):
        self.storage = HubStorage(root)
        self.port = port
        self.url = None
        self.requests = []

    def start(self):
        """Starts serving in a background thread; returns the server URL."""
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        serve = self._httpd.serve_forever
        self._thread = threading.Thread(target=serve, args=(0.05,))
        self._thread.daemon = True
        self._thread.start()
        return self.url

    def stop(self):
        """Stops serving and closes the listening socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()


def hub_client_env(
    endpoint, hf_home, offline=False, token=DEFAULT_TOKEN, extra_env=None
):
    """The environment of a `huggingface_hub` client of the local hub.

    Inherited `HF_*` and `HUGGINGFACE*` variables are dropped: the
    developer's own configuration cannot leak into tests.

    Args:
        endpoint: the server URL, or None to leave `HF_ENDPOINT` unset.
        hf_home: the client's `HF_HOME` (its cache is `hf_home/hub`).
        offline: whether to set `HF_HUB_OFFLINE=1`.
        token: `HF_TOKEN`, or None for none.
        extra_env: more variables, set last.

    Returns:
        a dict of environment variables.
    """
    env = dict(os.environ)
    for name in [k for k in env if k.startswith(("HF_", "HUGGINGFACE"))]:
        del env[name]
    env["HF_HOME"] = str(hf_home)
    env["PYTHONUNBUFFERED"] = "1"
    for name in ("TELEMETRY", "PROGRESS_BARS", "UPDATE_CHECK"):
        env[f"HF_HUB_DISABLE_{name}"] = "1"
    if endpoint:
        env["HF_ENDPOINT"] = endpoint
    if token:
        env["HF_TOKEN"] = token
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return {**env, **(extra_env or {})}


def run_hub_client(
    code, endpoint, hf_home, offline=False, extra_env=None, timeout=120
):
    """Runs client code in a fresh interpreter, with `hub_client_env`.

    Args:
        code: Python source (dedented first) that prints a JSON value on its
            last line of output.
        endpoint, hf_home, offline, extra_env: as for `hub_client_env`.
        timeout: seconds before the run is killed.

    Returns:
        the JSON value printed last.

    Raises:
        AssertionError: with the output, if the code fails.
    """
    env = hub_client_env(endpoint, hf_home, offline, extra_env=extra_env)
    command = [sys.executable, "-c", textwrap.dedent(code)]
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(
            f"hub client failed (exit code {result.returncode})\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description="Serves a local test Hub.")
    parser.add_argument("--root", required=True, help="the storage folder")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with HubServer(args.root, args.port) as server:
        print(
            f"Serving local Hugging Face Hub on {server.url} "
            f"(root: {args.root})",
            flush=True,
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
