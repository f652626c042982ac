"""A tiny, standard-library-only Hugging Face Hub look-alike for tests.

The real ``huggingface_hub`` client (tested against version 2.4.0) can be pointed
at this server with ``HF_ENDPOINT=http://127.0.0.1:PORT``. Only the subset of the
Hub HTTP API that the client uses for repo creation, uploads, repo info, tree
listings and downloads is implemented:

=======  ==================================================  =============================
Method   Path                                                Used by
=======  ==================================================  =============================
GET      /api/whoami-v2                                      ``whoami``
GET      /api/agent-harnesses                                user-agent detection (telemetry)
POST     /api/validate-yaml                                  ``upload_*`` with a README.md
POST     /api/repos/create                                   ``create_repo`` (409 if exists)
DELETE   /api/repos/delete                                   ``delete_repo``
GET      /api/{type}s/{repo_id}                              ``model_info`` / ``repo_info``
GET      /api/{type}s/{repo_id}/revision/{rev}               ``model_info(revision=...)``
GET      /api/{type}s/{repo_id}/tree/{rev}[/{path}]          ``list_repo_tree`` / ``list_repo_files``
                                                             / ``snapshot_download``
POST     /api/{type}s/{repo_id}/paths-info/{rev}             ``get_paths_info``
POST     /api/{type}s/{repo_id}/preupload/{rev}              ``create_commit`` / ``upload_*``
POST     /api/{type}s/{repo_id}/commit/{rev}                 ``create_commit`` / ``upload_*``
                                                             (NDJSON; ``?create_pr=1`` supported)
GET      /api/{type}s/{repo_id}/commits/{rev}                ``list_repo_commits``
GET      /api/{type}s/{repo_id}/refs                         ``list_repo_refs``
POST     /api/{type}s/{repo_id}/branch/{branch}              ``create_branch``
DELETE   /api/{type}s/{repo_id}/branch/{branch}              ``delete_branch``
HEAD     /[{type}s/]{repo_id}/resolve/{rev}/{path}           ``get_hf_file_metadata`` / ``file_exists``
GET      /[{type}s/]{repo_id}/resolve/{rev}/{path}           ``hf_hub_download`` (Range supported)
=======  ==================================================  =============================

``{type}s`` is ``models``, ``datasets`` or ``spaces``; model download URLs have
no type prefix (exactly like on huggingface.co).

Client quirks this server relies on / reproduces
------------------------------------------------
* Error mapping is driven by the ``X-Error-Code`` response header
  (``RepoNotFound`` -> ``RepositoryNotFoundError``, ``RevisionNotFound`` ->
  ``RevisionNotFoundError``, ``EntryNotFound`` -> ``RemoteEntryNotFoundError``,
  which subclasses ``EntryNotFoundError``). The client's 401 -> "repo not found"
  heuristic only matches ``https://`` URLs, so it never triggers here: missing
  repos are answered with 404 + ``X-Error-Code: RepoNotFound``.
* ``hf_hub_download`` needs ``X-Repo-Commit`` and a (quoted) ``ETag`` on the HEAD
  response; ``Content-Length`` gives the expected size. ``EntryNotFound``
  responses also carry ``X-Repo-Commit`` so the client can cache the
  non-existence of a file (``.no_exist``), like on the real Hub.
* Xet is never used: the preupload endpoint declares every file as
  ``uploadMode: "regular"`` (content is sent base64-encoded inside the NDJSON
  commit payload) and file responses never carry ``X-Xet-*`` headers nor a
  ``Link: <...>; rel="xet-auth"`` header. This works with ``hf_xet`` installed
  (then ``upload_folder`` goes through the client's pipelined uploader, which
  only touches xet for "lfs" files) and with ``HF_HUB_DISABLE_XET=1`` (legacy
  single ``create_commit`` path). Xet token endpoints answer 404 and are
  recorded in :attr:`HubServer.requests` so tests can assert they were not hit.
* ETags / blob ids are git blob SHA-1s (as the Hub does for regular files), so
  the client's "unchanged file" detection (``oid`` returned by preupload vs the
  local git SHA-1) skips no-op uploads just like on the real Hub.
* With the server down and ``HF_HUB_OFFLINE`` unset, ``hf_hub_download`` retries
  the HEAD call with exponential backoff (~23 s in total) before raising
  ``LocalEntryNotFoundError``; ``snapshot_download`` (``repo_info``) fails fast.
  Use ``HF_HUB_OFFLINE=1`` (``offline=True`` in :func:`run_hub_client`) for
  fast offline tests.
* The client reads ``HF_ENDPOINT``/``HF_HOME``/``HF_TOKEN``/``HF_HUB_OFFLINE`` at
  import time, hence :func:`run_hub_client`, which runs client code in a fresh
  interpreter with a clean ``HF_*`` environment.

Not implemented: LFS/xet storage, pull-request discussions API (so
``upload_folder(create_pr=True)`` with ``hf_xet`` installed fails; ``create_commit``
/ ``upload_file`` with ``create_pr=True`` work), tags, gating, permissions (any
``Bearer`` token may write anywhere; reads need no token), ``.gitignore`` rules.

Storage layout (persistent, so a server can be restarted on the same root)::

    root_dir/{type}s/{namespace}/{name}/repo.json       repo metadata
    root_dir/{type}s/{namespace}/{name}/refs.json       {"refs/heads/main": commit_id, ...}
    root_dir/{type}s/{namespace}/{name}/commits/<id>.json
    root_dir/{type}s/{namespace}/{name}/objects/<sha[:2]>/<sha>   file contents

A commit is ``{"files": {path: {"oid": blob_sha1, "size": n}}, "parents": [...],
...}`` and its 40-hex id is the SHA-1 of its canonical JSON content.

Command line (serves in the foreground, prints the URL on the first stdout line)::

    python tests/hub_server.py --root DIR [--host 127.0.0.1] [--port 0]
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = [
    "DEFAULT_TOKEN",
    "DEFAULT_USERNAME",
    "HubClientError",
    "HubError",
    "HubServer",
    "HubStorage",
    "git_blob_sha1",
    "hub_client_env",
    "last_json_line",
    "run_hub_client",
]

DEFAULT_USERNAME = "user"
DEFAULT_TOKEN = "hf_local_test_token_0000000000000000"

REPO_TYPES = ("model", "dataset", "space")
_PLURAL_TO_TYPE = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_API_SUBROUTES = {
    "revision",
    "tree",
    "paths-info",
    "preupload",
    "commit",
    "commits",
    "refs",
    "branch",
    "xet-read-token",
    "xet-write-token",
    "discussions",
}


# --------------------------------------------------------------------------- helpers


def git_blob_sha1(data: bytes) -> str:
    """Git blob object id of ``data`` (what the Hub reports as oid/ETag for regular files)."""
    h = hashlib.sha1()
    h.update(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _normalize_repo_path(path: str) -> str:
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise HubError(400, None, f"Invalid path in repo: {path!r}")
    return "/".join(parts)


class HubError(Exception):
    """An HTTP error answered by the server (``code`` goes to ``X-Error-Code``)."""

    def __init__(self, status: int, code: str | None, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


# --------------------------------------------------------------------------- storage


class HubStorage:
    """Persistent repo storage (thread-safe). Can also be used directly to seed repos in tests."""

    def __init__(self, root_dir: str | os.PathLike):
        self.root = Path(root_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()

    # -- paths / validation

    @staticmethod
    def _check_type(repo_type: str | None) -> str:
        repo_type = repo_type or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, None, f"Invalid repo type: {repo_type!r}")
        return repo_type

    def repo_dir(self, repo_id: str, repo_type: str | None = "model") -> Path:
        repo_type = self._check_type(repo_type)
        parts = repo_id.split("/")
        if len(parts) != 2 or not all(_NAME_RE.match(p) for p in parts) or any(".." in p or "--" in p for p in parts):
            raise HubError(404, "RepoNotFound", f"Repository Not Found: invalid repo id {repo_id!r}")
        return self.root / f"{repo_type}s" / parts[0] / parts[1]

    def exists(self, repo_id: str, repo_type: str | None = "model") -> bool:
        try:
            return (self.repo_dir(repo_id, repo_type) / "repo.json").is_file()
        except HubError:
            return False

    def _require(self, repo_id: str, repo_type: str | None) -> Path:
        d = self.repo_dir(repo_id, repo_type)
        if not (d / "repo.json").is_file():
            raise HubError(404, "RepoNotFound", f"Repository {repo_id!r} not found")
        return d

    # -- json helpers

    @staticmethod
    def _read_json(path: Path) -> Any:
        with open(path, "rb") as f:
            return json.loads(f.read())

    @staticmethod
    def _write_json(path: Path, obj: Any) -> None:
        _atomic_write(path, json.dumps(obj, indent=1, sort_keys=True).encode())

    def repo_meta(self, repo_id: str, repo_type: str | None = "model") -> dict:
        return self._read_json(self._require(repo_id, repo_type) / "repo.json")

    def refs(self, repo_id: str, repo_type: str | None = "model") -> dict[str, str]:
        with self._lock:
            return dict(self._read_json(self._require(repo_id, repo_type) / "refs.json"))

    # -- repo lifecycle

    def create_repo(
        self, repo_id: str, repo_type: str | None = "model", *, private: bool = False, exist_ok: bool = False
    ) -> bool:
        """Create an empty repo (with an empty initial commit on ``main``). Returns False if it existed."""
        repo_type = self._check_type(repo_type)
        with self._lock:
            d = self.repo_dir(repo_id, repo_type)
            if (d / "repo.json").is_file():
                if exist_ok:
                    return False
                raise HubError(409, None, f"You already created this {repo_type} repo: {repo_id}")
            d.mkdir(parents=True, exist_ok=True)
            created = _now()
            self._write_json(d / "refs.json", {})
            self._write_json(
                d / "repo.json",
                {"id": repo_id, "type": repo_type, "private": bool(private), "createdAt": created},
            )
            commit_id = self._store_commit(d, parents=[], files={}, summary="initial commit", description="")
            self._write_json(d / "refs.json", {"refs/heads/main": commit_id})
            return True

    def delete_repo(self, repo_id: str, repo_type: str | None = "model") -> None:
        import shutil

        with self._lock:
            d = self._require(repo_id, repo_type)
            shutil.rmtree(d)

    # -- objects / commits

    def _store_blob(self, d: Path, data: bytes) -> str:
        sha = git_blob_sha1(data)
        path = d / "objects" / sha[:2] / sha
        if not path.exists():
            _atomic_write(path, data)
        return sha

    def _store_commit(self, d: Path, *, parents: list[str], files: dict, summary: str, description: str) -> str:
        body = {
            "parents": parents,
            "files": files,
            "summary": summary,
            "description": description,
            "date": _now(),
            "author": DEFAULT_USERNAME,
        }
        commit_id = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()
        body["id"] = commit_id
        self._write_json(d / "commits" / f"{commit_id}.json", body)
        return commit_id

    def get_commit(self, repo_id: str, commit_id: str, repo_type: str | None = "model") -> dict:
        d = self._require(repo_id, repo_type)
        path = d / "commits" / f"{commit_id}.json"
        if not _COMMIT_RE.match(commit_id) or not path.is_file():
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {commit_id}")
        return self._read_json(path)

    def read_blob(self, repo_id: str, oid: str, repo_type: str | None = "model") -> bytes:
        d = self._require(repo_id, repo_type)
        with open(d / "objects" / oid[:2] / oid, "rb") as f:
            return f.read()

    def resolve(self, repo_id: str, revision: str | None = None, repo_type: str | None = "model") -> str:
        """Resolve a branch name, full ref name (``refs/pr/1``) or commit id to a commit id."""
        revision = revision or "main"
        with self._lock:
            d = self._require(repo_id, repo_type)
            refs = self._read_json(d / "refs.json")
            for candidate in (f"refs/heads/{revision}", revision, f"refs/tags/{revision}"):
                if candidate in refs:
                    return refs[candidate]
            if _COMMIT_RE.match(revision) and (d / "commits" / f"{revision}.json").is_file():
                return revision
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    def files(self, repo_id: str, revision: str | None = None, repo_type: str | None = "model") -> dict[str, dict]:
        """``{path: {"oid": sha1, "size": n}}`` at ``revision``."""
        commit_id = self.resolve(repo_id, revision, repo_type)
        return self.get_commit(repo_id, commit_id, repo_type)["files"]

    def read_file(
        self, repo_id: str, path: str, revision: str | None = None, repo_type: str | None = "model"
    ) -> bytes:
        entry = self.files(repo_id, revision, repo_type).get(_normalize_repo_path(path))
        if entry is None:
            raise HubError(404, "EntryNotFound", f"Entry not found: {path}")
        return self.read_blob(repo_id, entry["oid"], repo_type)

    def history(self, repo_id: str, revision: str | None = None, repo_type: str | None = "model") -> list[dict]:
        """Commits reachable from ``revision`` (newest first, first-parent chain)."""
        commit_id: str | None = self.resolve(repo_id, revision, repo_type)
        out = []
        while commit_id:
            commit = self.get_commit(repo_id, commit_id, repo_type)
            out.append(commit)
            commit_id = commit["parents"][0] if commit["parents"] else None
        return out

    def _branch_ref(self, refs: dict, revision: str) -> str:
        for candidate in (f"refs/heads/{revision}", revision):
            if candidate in refs and (candidate.startswith("refs/heads/") or candidate.startswith("refs/pr/")):
                return candidate
        if _COMMIT_RE.match(revision):
            raise HubError(400, None, f"Cannot commit to a commit id ({revision}): use a branch name")
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    def commit(
        self,
        repo_id: str,
        *,
        repo_type: str | None = "model",
        revision: str | None = "main",
        add: Mapping[str, bytes] | None = None,
        delete: Iterable[str] = (),
        delete_folders: Iterable[str] = (),
        summary: str = "Commit",
        description: str = "",
        parent_commit: str | None = None,
        create_pr: bool = False,
    ) -> tuple[str, int | None]:
        """Create a commit on a branch. Returns ``(commit_id, pr_number_or_None)``."""
        with self._lock:
            d = self._require(repo_id, repo_type)
            refs = self._read_json(d / "refs.json")
            ref = self._branch_ref(refs, revision or "main")
            head = refs[ref]
            if parent_commit is not None and not head.startswith(parent_commit):
                raise HubError(412, None, "A commit has happened since. Please refresh and try again.")
            pr_num = None
            if create_pr:
                nums = [int(r.rsplit("/", 1)[1]) for r in refs if r.startswith("refs/pr/")]
                pr_num = max(nums, default=0) + 1
                ref = f"refs/pr/{pr_num}"
            files = dict(self.get_commit(repo_id, head, repo_type)["files"])
            for path in delete:
                path = _normalize_repo_path(path)
                if path not in files:
                    raise HubError(404, "EntryNotFound", f"A file with this name doesn't exist: {path}")
                del files[path]
            for folder in delete_folders:
                folder = _normalize_repo_path(folder)
                matching = [p for p in files if p.startswith(folder + "/")] if folder else list(files)
                if not matching:
                    raise HubError(404, "EntryNotFound", f"A folder with this name doesn't exist: {folder}")
                for p in matching:
                    del files[p]
            for path, data in (add or {}).items():
                path = _normalize_repo_path(path)
                if not path:
                    raise HubError(400, None, "Empty path in repo")
                if any(p.startswith(path + "/") for p in files) or any(
                    path.startswith(p + "/") for p in files
                ):
                    raise HubError(400, None, f"File/folder conflict for {path!r}")
                files[path] = {"oid": self._store_blob(d, bytes(data)), "size": len(data)}
            commit_id = self._store_commit(
                d, parents=[head], files=dict(sorted(files.items())), summary=summary, description=description
            )
            refs[ref] = commit_id
            self._write_json(d / "refs.json", refs)
            return commit_id, pr_num

    def create_branch(
        self, repo_id: str, branch: str, starting_point: str | None = None, repo_type: str | None = "model"
    ) -> str:
        with self._lock:
            d = self._require(repo_id, repo_type)
            refs = self._read_json(d / "refs.json")
            if not branch or branch.startswith("refs/") or ".." in branch:
                raise HubError(400, None, f"Invalid branch name: {branch!r}")
            if f"refs/heads/{branch}" in refs:
                raise HubError(409, None, f"Reference already exists: refs/heads/{branch}")
            commit_id = self.resolve(repo_id, starting_point or "main", repo_type)
            refs[f"refs/heads/{branch}"] = commit_id
            self._write_json(d / "refs.json", refs)
            return commit_id

    def delete_branch(self, repo_id: str, branch: str, repo_type: str | None = "model") -> None:
        with self._lock:
            d = self._require(repo_id, repo_type)
            refs = self._read_json(d / "refs.json")
            if branch == "main":
                raise HubError(403, None, "Cannot delete the default branch")
            if f"refs/heads/{branch}" not in refs:
                raise HubError(404, "RevisionNotFound", f"Invalid rev id: {branch}")
            del refs[f"refs/heads/{branch}"]
            self._write_json(d / "refs.json", refs)

    # -- listings

    def tree(
        self,
        repo_id: str,
        revision: str | None = None,
        path: str = "",
        *,
        recursive: bool = False,
        repo_type: str | None = "model",
    ) -> list[dict]:
        """Tree listing entries as returned by ``GET /api/{type}s/{id}/tree/{rev}/{path}``."""
        files = self.files(repo_id, revision, repo_type)
        base = _normalize_repo_path(path)
        prefix = base + "/" if base else ""
        if base and base in files:
            raise HubError(404, "EntryNotFound", f"{base!r} is a file, not a directory")
        under = {p: e for p, e in files.items() if p.startswith(prefix)}
        if base and not under:
            raise HubError(404, "EntryNotFound", f"Path {base!r} not found in repo")
        dirs: set[str] = set()
        entries = []
        for p, e in under.items():
            rel_parts = p[len(prefix) :].split("/")
            for i in range(1, len(rel_parts)):
                if recursive or i == 1:
                    dirs.add(prefix + "/".join(rel_parts[:i]))
            if recursive or len(rel_parts) == 1:
                entries.append({"type": "file", "oid": e["oid"], "size": e["size"], "path": p})
        for dpath in dirs:
            entries.append({"type": "directory", "oid": self._tree_oid(files, dpath), "size": 0, "path": dpath})
        return sorted(entries, key=lambda x: (x["type"] != "directory", x["path"]))

    @staticmethod
    def _tree_oid(files: Mapping[str, dict], dpath: str) -> str:
        listing = sorted((p, e["oid"]) for p, e in files.items() if p.startswith(dpath + "/"))
        return hashlib.sha1(json.dumps(listing).encode()).hexdigest()

    def paths_info(
        self, repo_id: str, revision: str | None, paths: Iterable[str], repo_type: str | None = "model"
    ) -> list[dict]:
        files = self.files(repo_id, revision, repo_type)
        out = []
        for raw in paths:
            p = _normalize_repo_path(raw)
            if p in files:
                out.append({"type": "file", "oid": files[p]["oid"], "size": files[p]["size"], "path": p})
            elif p and any(f.startswith(p + "/") for f in files):
                out.append({"type": "directory", "oid": self._tree_oid(files, p), "size": 0, "path": p})
        return out


# --------------------------------------------------------------------------- HTTP layer


class _HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    hub: "HubServer"


class _Handler(BaseHTTPRequestHandler):
    server: _HubHTTPServer
    server_version = "LocalHub/1.0"
    # HTTP/1.0 => one request per connection: nothing lingers once the server is stopped.
    protocol_version = "HTTP/1.0"

    # ---------------------------------------------------------------- plumbing

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.hub.verbose:
            sys.stderr.write("[hub_server] %s - %s\n" % (self.address_string(), format % args))

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    @property
    def base_url(self) -> str:
        host = self.headers.get("Host") or f"{self.server.hub.host}:{self.server.hub.port}"
        return f"http://{host}"

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size_line = self.rfile.readline().strip().split(b";")[0]
                size = int(size_line or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _json_body(self) -> Any:
        body = self._read_body()
        try:
            return json.loads(body or b"{}")
        except ValueError as e:
            raise HubError(400, None, f"Invalid JSON body: {e}") from e

    def _send(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        headers.setdefault("Connection", "close")
        for k, v in headers.items():
            self.send_header(k, v)
        request_id = self.headers.get("X-Amzn-Trace-Id") or self.headers.get("X-Request-Id")
        if request_id:
            self.send_header("X-Request-Id", request_id)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _send_json(self, obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(obj).encode()
        h = {"Content-Type": "application/json; charset=utf-8"}
        h.update(headers or {})
        self._send(status, body, h)

    def _send_error(self, err: HubError) -> None:
        headers = {"X-Error-Message": err.message.replace("\n", " ")[:500]}
        if err.code:
            headers["X-Error-Code"] = err.code
        headers.update(err.headers)
        self._send_json({"error": err.message}, status=err.status, headers=headers)

    def _require_token(self) -> None:
        auth = self.headers.get("Authorization", "")
        if not auth.lower().startswith("bearer ") or not auth[7:].strip():
            raise HubError(401, None, "Invalid credentials in Authorization header")

    def _dispatch(self, method: str) -> None:
        hub = self.server.hub
        hub._record(method, self.path)
        try:
            parsed = urlsplit(self.path)
            segs = parsed.path.split("/")[1:]
            if segs and segs[-1] == "" and len(segs) > 1:
                segs = segs[:-1]
            query = parse_qs(parsed.query, keep_blank_values=True)
            self._route(method, segs, query)
        except HubError as e:
            self._send_error(e)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # pragma: no cover - debugging aid
            import traceback

            traceback.print_exc()
            # 400, not 5xx: the client retries 5xx responses with backoff (slow tests).
            self._send_error(HubError(400, None, f"Internal error in local hub: {type(e).__name__}: {e}"))

    # ---------------------------------------------------------------- routing

    def _route(self, method: str, segs: list[str], query: dict[str, list[str]]) -> None:
        hub = self.server.hub
        if segs[:1] == ["api"]:
            api = segs[1:]
            if api == ["whoami-v2"] and method == "GET":
                self._require_token()
                return self._send_json(hub.whoami())
            if api == ["agent-harnesses"] and method == "GET":
                return self._send_json({"standardEnvVars": [], "harnesses": {}})
            if api == ["validate-yaml"] and method == "POST":
                self._read_body()
                return self._send_json({"errors": [], "warnings": []})
            if api[:1] == ["repos"] and len(api) == 2:
                return self._route_repos(method, api[1])
            if api and api[0] in _PLURAL_TO_TYPE and len(api) >= 2:
                repo_type = _PLURAL_TO_TYPE[api[0]]
                rest = [unquote(s) for s in api[1:]]
                if len(rest) >= 2 and rest[1] not in _API_SUBROUTES:
                    repo_id, sub = f"{rest[0]}/{rest[1]}", rest[2:]
                else:
                    repo_id, sub = rest[0], rest[1:]
                return self._route_repo_api(method, repo_type, repo_id, sub, query)
            raise HubError(404, None, f"Route not implemented by local hub: {method} {self.path}")

        # /[datasets|spaces/]{repo_id}/resolve/{rev}/{path}
        if "resolve" in segs[1:] and method in ("GET", "HEAD"):
            i = segs.index("resolve", 1)
            if segs[0] in ("datasets", "spaces", "models") and i >= 2:
                repo_type, repo_segs = _PLURAL_TO_TYPE[segs[0]], segs[1:i]
            else:
                repo_type, repo_segs = "model", segs[:i]
            repo_id = "/".join(unquote(s) for s in repo_segs)
            after = [unquote(s) for s in segs[i + 1 :]]
            if not after:
                raise HubError(404, None, "Missing revision")
            if after[0] == "refs" and len(after) >= 3 and after[1] in ("pr", "heads", "tags", "convert"):
                revision, file_parts = "/".join(after[:3]), after[3:]
            else:
                revision, file_parts = after[0], after[1:]
            return self._resolve_file(repo_type, repo_id, revision, "/".join(file_parts))
        raise HubError(404, None, f"Route not implemented by local hub: {method} {self.path}")

    def _route_repos(self, method: str, action: str) -> None:
        hub = self.server.hub
        if action == "create" and method == "POST":
            self._require_token()
            body = self._json_body()
            repo_type = body.get("type") or "model"
            repo_id = f"{body.get('organization') or hub.username}/{body.get('name')}"
            private = bool(body.get("private")) or body.get("visibility") == "private"
            url = f"{self.base_url}/{_URL_PREFIX.get(repo_type, '')}{repo_id}"
            try:
                hub.storage.create_repo(repo_id, repo_type, private=private)
            except HubError as e:
                if e.status == 409:
                    return self._send_json({"error": e.message, "url": url}, status=409)
                raise
            return self._send_json({"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]})
        if action == "delete" and method == "DELETE":
            self._require_token()
            body = self._json_body()
            repo_type = body.get("type") or "model"
            repo_id = f"{body.get('organization') or hub.username}/{body.get('name')}"
            hub.storage.delete_repo(repo_id, repo_type)
            return self._send_json({})
        raise HubError(404, None, f"Route not implemented by local hub: {method} /api/repos/{action}")

    def _route_repo_api(
        self, method: str, repo_type: str, repo_id: str, sub: list[str], query: dict[str, list[str]]
    ) -> None:
        storage = self.server.hub.storage

        def flag(name: str) -> bool:
            return (query.get(name) or ["false"])[-1].lower() in ("1", "true", "yes")

        if method == "GET" and (not sub or sub[0] == "revision"):
            revision = "/".join(sub[1:]) if sub else None
            if sub and not revision:
                raise HubError(404, "RevisionNotFound", "Missing revision")
            return self._send_json(self._repo_info(repo_type, repo_id, revision, blobs=flag("blobs")))

        if method == "GET" and sub[0] == "tree" and len(sub) >= 2:
            entries = storage.tree(repo_id, sub[1], "/".join(sub[2:]), recursive=flag("recursive"), repo_type=repo_type)
            return self._send_json(entries)

        if method == "POST" and sub[0] == "paths-info" and len(sub) >= 2:
            body = self._read_body()
            ctype = self.headers.get("Content-Type", "")
            if "json" in ctype:
                paths = json.loads(body or b"{}").get("paths", [])
            else:
                paths = parse_qs(body.decode(), keep_blank_values=True).get("paths", [])
            return self._send_json(storage.paths_info(repo_id, "/".join(sub[1:]), paths, repo_type))

        if method == "POST" and sub[0] == "preupload" and len(sub) >= 2:
            self._require_token()
            revision = "/".join(sub[1:])
            body = self._json_body()
            head = storage.resolve(repo_id, revision, repo_type)
            files = storage.get_commit(repo_id, head, repo_type)["files"]
            out = []
            for f in body.get("files", []):
                path = f.get("path", "")
                existing = files.get(_normalize_repo_path(path))
                out.append(
                    {
                        "path": path,
                        "uploadMode": "regular",
                        "shouldIgnore": False,
                        "oid": existing["oid"] if existing else None,
                    }
                )
            return self._send_json({"files": out, "commitOid": head})

        if method == "POST" and sub[0] == "commit" and len(sub) >= 2:
            self._require_token()
            return self._commit(repo_type, repo_id, "/".join(sub[1:]), create_pr=flag("create_pr"))

        if method == "GET" and sub[0] == "commits" and len(sub) >= 2:
            commits = storage.history(repo_id, "/".join(sub[1:]), repo_type)
            return self._send_json(
                [
                    {
                        "id": c["id"],
                        "title": c["summary"],
                        "message": c["description"],
                        "authors": [{"user": c.get("author", DEFAULT_USERNAME), "avatar": ""}],
                        "date": c["date"],
                    }
                    for c in commits
                ]
            )

        if method == "GET" and sub == ["refs"]:
            refs = storage.refs(repo_id, repo_type)

            def fmt(prefix: str) -> list[dict]:
                return [
                    {"name": r[len(prefix) :], "ref": r, "targetCommit": c}
                    for r, c in sorted(refs.items())
                    if r.startswith(prefix)
                ]

            return self._send_json(
                {
                    "branches": fmt("refs/heads/"),
                    "tags": fmt("refs/tags/"),
                    "converts": fmt("refs/convert/"),
                    "pullRequests": fmt("refs/pr/"),
                }
            )

        if sub[0] == "branch" and len(sub) >= 2 and method in ("POST", "DELETE"):
            self._require_token()
            branch = "/".join(sub[1:])
            if method == "POST":
                body = self._json_body()
                storage.create_branch(repo_id, branch, body.get("startingPoint"), repo_type)
            else:
                storage.delete_branch(repo_id, branch, repo_type)
            return self._send_json({})

        if sub[0] in ("xet-read-token", "xet-write-token"):
            raise HubError(404, None, "Xet storage is not supported by the local test hub")

        raise HubError(404, None, f"Route not implemented by local hub: {method} {self.path}")

    # ---------------------------------------------------------------- endpoints

    def _repo_info(self, repo_type: str, repo_id: str, revision: str | None, blobs: bool) -> dict:
        storage = self.server.hub.storage
        meta = storage.repo_meta(repo_id, repo_type)
        commit_id = storage.resolve(repo_id, revision, repo_type)
        commit = storage.get_commit(repo_id, commit_id, repo_type)
        siblings = []
        for path, entry in commit["files"].items():
            sib: dict[str, Any] = {"rfilename": path}
            if blobs:
                sib.update(size=entry["size"], blobId=entry["oid"])
            siblings.append(sib)
        info = {
            "_id": hashlib.sha1(f"{repo_type}/{repo_id}".encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo_id.split("/")[0],
            "sha": commit_id,
            "lastModified": commit["date"],
            "createdAt": meta["createdAt"],
            "private": meta.get("private", False),
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(e["size"] for e in commit["files"].values()),
        }
        if repo_type == "model":
            info["modelId"] = repo_id
        return info

    def _commit(self, repo_type: str, repo_id: str, revision: str, create_pr: bool) -> None:
        storage = self.server.hub.storage
        body = self._read_body()
        header: dict = {}
        add: dict[str, bytes] = {}
        delete: list[str] = []
        delete_folders: list[str] = []
        for line in body.splitlines():
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as e:
                raise HubError(400, None, f"Invalid NDJSON line: {e}") from e
            key, value = item.get("key"), item.get("value") or {}
            if key == "header":
                header = value
            elif key == "file":
                content = value.get("content", "")
                if value.get("encoding", "base64") == "base64":
                    data = base64.b64decode(content)
                else:
                    data = content.encode("utf-8")
                add[value["path"]] = data
            elif key == "deletedFile":
                delete.append(value["path"])
            elif key == "deletedFolder":
                delete_folders.append(value["path"].rstrip("/"))
            elif key == "lfsFile":
                raise HubError(400, None, "LFS files are not supported by the local test hub")
            else:
                raise HubError(400, None, f"Unknown commit operation: {key!r}")
        commit_id, pr_num = storage.commit(
            repo_id,
            repo_type=repo_type,
            revision=revision,
            add=add,
            delete=delete,
            delete_folders=delete_folders,
            summary=header.get("summary") or "Commit",
            description=header.get("description") or "",
            parent_commit=header.get("parentCommit"),
            create_pr=create_pr,
        )
        repo_url = f"{self.base_url}/{_URL_PREFIX[repo_type]}{repo_id}"
        response = {
            "success": True,
            "commitOid": commit_id,
            "commitUrl": f"{repo_url}/commit/{commit_id}",
            "hookOutput": "",
        }
        if pr_num is not None:
            response["pullRequestUrl"] = f"{repo_url}/discussions/{pr_num}"
        self._send_json(response)

    def _resolve_file(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        storage = self.server.hub.storage
        commit_id = storage.resolve(repo_id, revision, repo_type)
        files = storage.get_commit(repo_id, commit_id, repo_type)["files"]
        entry = files.get(_normalize_repo_path(path)) if path else None
        if entry is None:
            raise HubError(
                404, "EntryNotFound", f"Entry not found: {path!r}", headers={"X-Repo-Commit": commit_id}
            )
        size = entry["size"]
        name = path.rsplit("/", 1)[-1]
        headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "ETag": f'"{entry["oid"]}"',
            "X-Repo-Commit": commit_id,
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}; filename=\"{name}\";",
        }
        status, start, end = 200, 0, size - 1
        range_header = self.headers.get("Range")
        if range_header and self.command == "GET":
            m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", range_header)
            if m and (m.group(1) or m.group(2)):
                if m.group(1):
                    start = int(m.group(1))
                    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                else:
                    start, end = max(size - int(m.group(2)), 0), size - 1
                if start >= size or start > end:
                    raise HubError(
                        416, None, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"}
                    )
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        if self.command == "HEAD":
            headers["Content-Length"] = str(size)
            return self._send(200, b"", headers)
        data = storage.read_blob(repo_id, entry["oid"], repo_type)[start : end + 1]
        self._send(status, data, headers)


# --------------------------------------------------------------------------- server


class HubServer:
    """Local Hub server on loopback, backed by :class:`HubStorage` in ``root_dir``.

    >>> with HubServer(tmp_path / "hub") as server:   # doctest: +SKIP
    ...     run_hub_client("from huggingface_hub import whoami; print(whoami())", server.url, tmp_path / "hf")
    """

    def __init__(
        self,
        root_dir: str | os.PathLike,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        username: str = DEFAULT_USERNAME,
        verbose: bool = False,
    ):
        self.storage = HubStorage(root_dir)
        self.root_dir = self.storage.root
        self.host = host
        self._requested_port = int(port)
        self.port: int | None = None
        self.username = username
        self.verbose = verbose
        self.requests: list[tuple[str, str]] = []  # (method, raw path) of every request received
        self._requests_lock = threading.Lock()
        self._httpd: _HubHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("HubServer is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def _bind(self) -> None:
        if self._httpd is not None:
            return
        # A restarted server comes back on its previous port when possible (same URL for clients).
        port = self._requested_port or self.port or 0
        try:
            httpd = _HubHTTPServer((self.host, port), _Handler)
        except OSError:
            if self._requested_port:
                raise
            httpd = _HubHTTPServer((self.host, 0), _Handler)
        httpd.hub = self
        self._httpd = httpd
        self.port = httpd.server_address[1]

    def start(self) -> str:
        """Start serving in a background thread; returns the base URL (``http://127.0.0.1:PORT``).

        Can be called again after :meth:`stop`; the data in ``root_dir`` persists across restarts.
        """
        if self._thread is not None:
            return self.url
        self._bind()
        assert self._httpd is not None
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="local-hub-server", daemon=True
        )
        self._thread.start()
        return self.url

    def serve_forever(self) -> None:
        """Serve in the foreground (used by ``python tests/hub_server.py``)."""
        self._bind()
        assert self._httpd is not None
        try:
            self._httpd.serve_forever(poll_interval=0.1)
        finally:
            self._httpd.server_close()
            self._httpd = None

    def stop(self) -> None:
        """Stop serving and close the listening socket (connections are refused afterwards)."""
        httpd, thread = self._httpd, self._thread
        self._httpd, self._thread = None, None
        if httpd is not None:
            if thread is not None:
                httpd.shutdown()
                thread.join(timeout=10)
            httpd.server_close()

    def __enter__(self) -> "HubServer":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---------------------------------------------------------------- misc

    def _record(self, method: str, path: str) -> None:
        with self._requests_lock:
            self.requests.append((method, path))

    def whoami(self) -> dict:
        return {
            "type": "user",
            "id": hashlib.sha1(self.username.encode()).hexdigest()[:24],
            "name": self.username,
            "fullname": "Local Test User",
            "email": f"{self.username}@localhost",
            "emailVerified": True,
            "isPro": False,
            "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "local-test", "role": "write"}},
        }


# --------------------------------------------------------------------------- client helpers


class HubClientError(RuntimeError):
    """Raised by :func:`run_hub_client` when the client subprocess fails."""

    def __init__(self, message: str, result: subprocess.CompletedProcess):
        super().__init__(message)
        self.result = result


def hub_client_env(
    endpoint: str | None,
    hf_home: str | os.PathLike,
    *,
    offline: bool = False,
    token: str | None = DEFAULT_TOKEN,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for a ``huggingface_hub`` subprocess talking to the local hub.

    All inherited ``HF_*`` / ``HUGGINGFACE_*`` variables (and ``TRANSFORMERS_OFFLINE``)
    are dropped so the developer's own configuration cannot leak into tests.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("HF_") or k.startswith("HUGGINGFACE") or k == "TRANSFORMERS_OFFLINE")
    }
    env.update(
        {
            "HF_HOME": str(hf_home),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DISABLE_UPDATE_CHECK": "1",
            "HF_HUB_DISABLE_EXPERIMENTAL_WARNING": "1",
            "HF_HUB_DISABLE_SYMLINKS_WARNING": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if endpoint:
        env["HF_ENDPOINT"] = str(endpoint).rstrip("/")
    if token:
        env["HF_TOKEN"] = token
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    env.update({k: str(v) for k, v in (extra_env or {}).items()})
    return env


def run_hub_client(
    code: str,
    endpoint: str | None,
    hf_home: str | os.PathLike,
    offline: bool = False,
    extra_env: Mapping[str, str] | None = None,
    *,
    token: str | None = DEFAULT_TOKEN,
    timeout: float = 120,
    check: bool = True,
    cwd: str | os.PathLike | None = None,
) -> subprocess.CompletedProcess:
    """Run ``code`` (dedented) in a fresh interpreter configured for the local hub.

    Returns the ``CompletedProcess`` (text mode). With ``check=True`` (default) a
    non-zero exit raises :class:`HubClientError` including stdout and stderr.
    """
    env = hub_client_env(endpoint, hf_home, offline=offline, token=token, extra_env=extra_env)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
    if check and result.returncode != 0:
        raise HubClientError(
            f"hub client subprocess failed (exit code {result.returncode})\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}",
            result,
        )
    return result


def last_json_line(stdout: str) -> Any:
    """Parse the last non-empty stdout line as JSON (convention for client subprocess results)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ValueError("no output")
    return json.loads(lines[-1])


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local Hugging Face Hub test server")
    parser.add_argument("--root", required=True, help="storage directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--username", default=DEFAULT_USERNAME)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)

    server = HubServer(args.root, args.host, args.port, username=args.username, verbose=args.verbose)
    server._bind()

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    print(f"Serving local Hugging Face Hub on {server.url} (root: {server.root_dir})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
