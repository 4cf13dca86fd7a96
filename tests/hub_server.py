"""A small Hugging Face Hub-compatible HTTP server for tests (stdlib only: ``http.server`` in a thread).

It speaks the subset of the Hub API that ``huggingface_hub`` 2.x uses to create a repository and a branch,
commit regular (non-LFS) files, read repository info and trees, and download files, so that pushing with
``HfApi`` and loading back with ``from_pretrained("ns/name")`` work against it unchanged (``HF_ENDPOINT`` or
``HfApi(endpoint=...)``). Storage is in memory: every commit is a full snapshot ``{path: bytes}``.

Auth: a request carries ``Authorization: Bearer TOKEN``; ``tokens`` maps tokens to user names. An unknown token
gets 401; writing without a token gets 401; writing to a namespace that is neither the user nor one of their
organisations gets 403. Public repositories are readable without a token.

``fail_commit`` simulates failures of the commit request: ``"drop"`` closes the connection without an answer
(what a network failure looks like to the client), ``"500"`` answers an internal error. Nothing is stored then.

>>> with FakeHub({"tok-alice": "alice"}) as hub:
...     hub.url.startswith("http://127.0.0.1:")
True
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"
TIMESTAMP = "2025-01-01T00:00:00.000Z"


def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob (what the Hub reports as a regular file's oid and ETag).

    >>> git_blob_oid(b"")
    'e69de29bb2d1d6434b8b29ae775ad8c2e48c5391'
    """
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    oid: str
    parent: str | None
    message: str
    description: str
    author: str
    files: dict[str, bytes]


@dataclass
class Repo:
    repo_id: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit oid
    commits: dict[str, Commit] = field(default_factory=dict)  # oid -> commit

    def resolve(self, revision: str) -> Commit | None:
        oid = self.branches.get(revision, revision)
        return self.commits.get(oid)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    user: str | None


class FakeHub:
    """The server: start with ``with FakeHub(tokens) as hub:``; ``hub.url`` is the endpoint."""

    def __init__(self, tokens: dict[str, str], orgs: dict[str, set[str]] | None = None):
        self.tokens = dict(tokens)
        self.orgs = {name: set(members) for name, members in (orgs or {}).items()}
        self.repos: dict[str, Repo] = {}
        self.requests: list[Request] = []
        self.unhandled: list[Request] = []
        self.fail_commit: str | None = None
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> FakeHub:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="fake-hub",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket: later connections are refused."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # --- state, for tests ------------------------------------------------------------------------------------
    def create_repo(self, repo_id: str, private: bool = False, files: dict[str, bytes] | None = None) -> Repo:
        """Create a repository directly (e.g. one owned by someone else), with an initial commit."""
        with self._lock:
            repo = Repo(repo_id, private)
            self._commit(repo, "main", {".gitattributes": GITATTRIBUTES, **(files or {})}, "initial commit", "", "")
            self.repos[repo_id] = repo
            return repo

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The files of ``repo_id`` at ``revision`` (branch or commit oid)."""
        return dict(self.repos[repo_id].resolve(revision).files)

    def history(self, repo_id: str, branch: str = "main") -> list[Commit]:
        """The commits of ``branch``, newest first."""
        repo = self.repos[repo_id]
        out, oid = [], repo.branches[branch]
        while oid is not None:
            out.append(repo.commits[oid])
            oid = repo.commits[oid].parent
        return out

    def _commit(self, repo: Repo, branch: str, files: dict[str, bytes], message: str, description: str,
                author: str) -> Commit:
        parent = repo.branches.get(branch)
        oid = hashlib.sha1(f"{repo.repo_id}\0{parent}\0{message}\0{next(self._counter)}".encode()).hexdigest()
        commit = Commit(oid, parent, message, description, author, files)
        repo.commits[oid] = commit
        repo.branches[branch] = oid
        return commit

    def can_write(self, user: str | None, namespace: str) -> bool:
        return user is not None and (user == namespace or user in self.orgs.get(namespace, set()))

    def can_read(self, user: str | None, repo: Repo) -> bool:
        return not repo.private or self.can_write(user, repo.repo_id.split("/")[0])


class _Reply(Exception):
    """Raised inside a handler to answer with an error status."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    server_version = "FakeHub/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # --- plumbing --------------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        segments = [unquote(s) for s in split.path.split("/")[1:]]
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        self.hub.requests.append(Request(method, split.path, self.hub.tokens.get(token, "?" if token else None)))
        try:
            self.user = self._user()
            route = self._route(method, segments)
            if route is None:
                self.hub.unhandled.append(Request(method, split.path, self.user))
                raise _Reply(404, f"no route for {method} {split.path}")
            route()
        except _Reply as r:
            headers = dict(r.headers)
            if r.code:
                headers["X-Error-Code"] = r.code
            headers["X-Error-Message"] = r.message
            self._send(r.status, json.dumps({"error": r.message}).encode(), "application/json", headers)

    def _user(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        if not auth:
            return None
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.hub.tokens:
            raise _Reply(401, "Invalid credentials in Authorization header")
        return self.hub.tokens[token]

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, value: Any, status: int = 200) -> None:
        self._send(status, json.dumps(value).encode())

    def _payload(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as e:
            raise _Reply(400, f"body is not JSON: {e}") from None

    def _route(self, method: str, s: list[str]):
        if method == "POST" and s == ["api", "repos", "create"]:
            return self._create_repo
        if method == "POST" and s == ["api", "validate-yaml"]:
            return self._validate_yaml
        if method == "GET" and s == ["api", "whoami-v2"]:
            return self._whoami
        if method == "GET" and s == ["api", "agent-harnesses"]:
            return lambda: self._json({"standardEnvVars": [], "harnesses": {}})
        if len(s) >= 4 and s[:2] == ["api", "models"]:
            repo_id, rest = f"{s[2]}/{s[3]}", s[4:]
            if method == "GET" and rest == []:
                return lambda: self._model_info(repo_id, "main")
            if method == "GET" and len(rest) == 2 and rest[0] == "revision":
                return lambda: self._model_info(repo_id, rest[1])
            if method == "GET" and rest == ["refs"]:
                return lambda: self._refs(repo_id)
            if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
                return lambda: self._tree(repo_id, rest[1], "/".join(rest[2:]))
            if method == "POST" and len(rest) == 2 and rest[0] == "preupload":
                return lambda: self._preupload(repo_id, rest[1])
            if method == "POST" and len(rest) == 2 and rest[0] == "commit":
                return lambda: self._commit(repo_id, rest[1])
            if method == "POST" and len(rest) == 2 and rest[0] == "branch":
                return lambda: self._create_branch(repo_id, rest[1])
        if method in ("GET", "HEAD") and len(s) >= 5 and s[2] == "resolve":
            return lambda: self._resolve(f"{s[0]}/{s[1]}", s[3], "/".join(s[4:]))
        return None

    # --- access ----------------------------------------------------------------------------------------------
    def _readable(self, repo_id: str) -> Repo:
        repo = self.hub.repos.get(repo_id)
        if repo is None or not self.hub.can_read(self.user, repo):
            raise _Reply(404, "Repository not found", "RepoNotFound")
        return repo

    def _writable(self, repo_id: str) -> Repo:
        if self.user is None:
            raise _Reply(401, "You must be authenticated to write to this repository")
        repo = self._readable(repo_id)
        if not self.hub.can_write(self.user, repo_id.split("/")[0]):
            raise _Reply(403, f"You don't have write access to {repo_id}")
        return repo

    def _revision(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise _Reply(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    # --- endpoints -------------------------------------------------------------------------------------------
    def _whoami(self) -> None:
        if self.user is None:
            raise _Reply(401, "Invalid credentials in Authorization header")
        orgs = [{"name": o, "type": "org"} for o, members in self.hub.orgs.items() if self.user in members]
        self._json({"type": "user", "name": self.user, "orgs": orgs,
                    "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}}})

    def _create_repo(self) -> None:
        body = self._payload()
        if self.user is None:
            raise _Reply(401, "You must be authenticated to create a repository")
        namespace = body.get("organization") or self.user
        repo_id = f"{namespace}/{body['name']}"
        if body.get("type", "model") != "model":
            raise _Reply(400, "this fake Hub only holds model repositories")
        if not self.hub.can_write(self.user, namespace):
            raise _Reply(403, f"You don't have the rights to create a model under the namespace \"{namespace}\"")
        with self.hub._lock:
            if repo_id in self.hub.repos:
                self._json({"error": "You already created this model repo", "url": f"{self.hub.url}/{repo_id}"}, 409)
                return
        private = body.get("visibility") == "private" or bool(body.get("private"))
        self.hub.create_repo(repo_id, private=private)
        self._json({"url": f"{self.hub.url}/{repo_id}", "name": repo_id, "id": repo_id})

    def _validate_yaml(self) -> None:
        content = self._payload().get("content", "")
        errors = []
        if content.startswith("---"):
            end = content.find("\n---", 3)
            try:
                meta = yaml.safe_load(content[3:end]) if end > 0 else None
                if end < 0 or not isinstance(meta, dict):
                    errors.append("metadata must be a YAML mapping between two '---' lines")
                else:
                    errors += _model_index_errors(meta.get("model-index"))
            except yaml.YAMLError as e:
                errors.append(f"invalid YAML: {e}")
        if errors:
            self._json({"errors": [{"message": m} for m in errors]}, 400)
        else:
            self._json({"errors": [], "warnings": []})

    def _model_info(self, repo_id: str, revision: str) -> None:
        repo = self._readable(repo_id)
        commit = self._revision(repo, revision)
        info = {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "modelId": repo_id,
            "author": repo_id.split("/")[0], "sha": commit.oid, "private": repo.private, "gated": False,
            "disabled": False, "downloads": 0, "likes": 0, "tags": [], "lastModified": TIMESTAMP,
            "createdAt": TIMESTAMP, "siblings": [{"rfilename": p} for p in sorted(commit.files)],
        }
        card = commit.files.get("README.md", b"").decode("utf-8", "replace")
        if card.startswith("---") and "\n---" in card[3:]:
            meta = yaml.safe_load(card[3:card.index("\n---", 3)])
            if isinstance(meta, dict):
                info["cardData"] = meta
                info["tags"] = list(meta.get("tags") or [])
                for key in ("pipeline_tag", "library_name"):
                    if key in meta:
                        info[key] = meta[key]
        self._json(info)

    def _refs(self, repo_id: str) -> None:
        repo = self._readable(repo_id)
        branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": oid} for b, oid in repo.branches.items()]
        self._json({"branches": branches, "tags": [], "converts": [], "pullRequests": []})

    def _tree(self, repo_id: str, revision: str, prefix: str) -> None:
        repo = self._readable(repo_id)
        commit = self._revision(repo, revision)
        prefix = prefix.strip("/")
        recursive = self.query.get("recursive", "false").lower() in ("1", "true")
        entries, folders = [], set()
        for path, content in sorted(commit.files.items()):
            if prefix and not path.startswith(prefix + "/"):
                continue
            rel = path[len(prefix) + 1:] if prefix else path
            if "/" in rel and not recursive:
                folders.add((prefix + "/" if prefix else "") + rel.split("/")[0])
                continue
            entries.append({"type": "file", "oid": git_blob_oid(content), "size": len(content), "path": path})
        if prefix and not entries and not folders:
            raise _Reply(404, f"{prefix} does not exist on {revision}", "EntryNotFound")
        entries += [{"type": "directory", "oid": "0" * 40, "size": 0, "path": f} for f in sorted(folders)]
        self._json(entries)

    def _preupload(self, repo_id: str, revision: str) -> None:
        repo = self._writable(repo_id)
        commit = self._revision(repo, revision)
        files = self._payload().get("files", [])
        self._json({"files": [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
             "oid": git_blob_oid(commit.files[f["path"]]) if f["path"] in commit.files else None}
            for f in files
        ]})

    def _commit(self, repo_id: str, revision: str) -> None:
        repo = self._writable(repo_id)
        if self.hub.fail_commit == "drop":
            self.close_connection = True  # no status line, no body: the client sees a dropped connection
            return
        if self.hub.fail_commit == "500":
            raise _Reply(500, "Internal Error - We're working hard to fix this as soon as possible!")
        try:
            lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        except ValueError as e:
            raise _Reply(400, f"commit body is not NDJSON: {e}") from None
        if not lines or lines[0].get("key") != "header":
            raise _Reply(400, "the first NDJSON line must be the commit header")
        header = lines[0]["value"]
        with self.hub._lock:
            base = self._revision(repo, revision)
            if header.get("parentCommit") and header["parentCommit"] != base.oid:
                raise _Reply(412, "A commit has happened since. Please refresh and try again.")
            files = dict(base.files)
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value", {})
                if key == "file":
                    if value.get("encoding") != "base64":
                        raise _Reply(400, f"unsupported encoding {value.get('encoding')!r}")
                    files[value["path"]] = base64.b64decode(value["content"])
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    files = {p: c for p, c in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
                else:
                    raise _Reply(400, f"this fake Hub does not accept {key!r} operations (only regular files)")
            branch = revision if revision in repo.branches else None
            if branch is None:
                raise _Reply(400, f"cannot commit on {revision!r}: not a branch")
            commit = self.hub._commit(repo, branch, files, header.get("summary", ""),
                                      header.get("description", ""), self.user)
        self._json({"success": True, "commitOid": commit.oid, "commitMessage": commit.message,
                    "commitUrl": f"{self.hub.url}/{repo_id}/commit/{commit.oid}", "hookOutput": "",
                    "pullRequestUrl": None})

    def _create_branch(self, repo_id: str, branch: str) -> None:
        repo = self._writable(repo_id)
        start = self._payload().get("startingPoint") or "main"
        with self.hub._lock:
            if branch in repo.branches:
                raise _Reply(409, f"Reference already exists: refs/heads/{branch}")
            repo.branches[branch] = self._revision(repo, start).oid
        self._json({})

    def _resolve(self, repo_id: str, revision: str, path: str) -> None:
        repo = self._readable(repo_id)
        commit = self._revision(repo, revision)
        if path not in commit.files:
            raise _Reply(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        content = commit.files[path]
        oid = git_blob_oid(content)
        self._send(200, content, "application/octet-stream",
                   {"X-Repo-Commit": commit.oid, "ETag": f'"{oid}"', "Accept-Ranges": "bytes"})


def _model_index_errors(index: Any) -> list[str]:
    """The checks the Hub applies to ``model-index``: a list of {name, results: [{task.type, dataset.{type,name},
    metrics: [{type, value}]}]}."""
    if index is None:
        return []
    errors = []
    if not isinstance(index, list):
        return ["model-index must be a list"]
    for entry in index:
        if not isinstance(entry, dict) or "name" not in entry or not isinstance(entry.get("results"), list):
            errors.append("each model-index entry needs a name and a list of results")
            continue
        for result in entry["results"]:
            task, dataset = result.get("task") or {}, result.get("dataset") or {}
            if "type" not in task:
                errors.append("model-index result without task.type")
            if "type" not in dataset or "name" not in dataset:
                errors.append("model-index result without dataset.type and dataset.name")
            for metric in result.get("metrics") or []:
                if "type" not in metric or not isinstance(metric.get("value"), (int, float, str)):
                    errors.append("model-index metric without type or value")
    return errors
