"""A fake GitHub REST API: pull requests with paginated files and diffs, issue comments with ids,
labels, issues, tokens with fine-grained permissions, GitHub Apps (JWT-checked installation
tokens), and GitHub's own error bodies.

    with FakeGitHub() as github:
        github.add_pull("octo/hello", 2, title="Fix", files=[{"filename": "a.py", "patch": "..."}])
        settings.FLOWS_GITHUB_API_URL = github.url    # token: github.token
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jwt

from tests.fakes.base import Answer, FakeServer, Recorded

DOCS = "https://docs.github.com/rest"
ALL_PERMISSIONS = {
    "contents": "write",
    "issues": "write",
    "pull_requests": "write",
    "metadata": "read",
}
LEVELS = {"read": 1, "write": 2, "admin": 3}
REPO = r"(?P<owner>[^/]+)/(?P<name>[^/]+)"
PAYLOADS = Path(__file__).resolve().parent / "payloads"


def load_payload(name: str) -> bytes:
    """A real GitHub webhook body, byte for byte, e.g. load_payload("pull_request.opened")."""
    return (PAYLOADS / f"{name}.json").read_bytes()


def sign(secret: str, body: bytes) -> str:
    """GitHub's X-Hub-Signature-256 of `body` with the webhook secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def not_found() -> Answer:
    return Answer(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})


class FakeGitHub(FakeServer):
    def __init__(self, token: str = "ghp_fakeToken1234567890abcdWXYZ", login: str = "flowbot"):
        # token -> {"login": ..., "permissions": {name: level}}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.repos: dict[str, dict[str, Any]] = {}
        self.comments: dict[int, dict[str, Any]] = {}
        self.next_id = 1000
        self.apps: dict[str, dict[str, Any]] = {}
        self.token = token
        self.login = login
        self.add_token(token, login)
        super().__init__()

    # state helpers -----------------------------------------------------------------------------
    def add_token(self, token: str, login: str, permissions: dict[str, str] | None = None) -> None:
        self.tokens[token] = {"login": login, "permissions": dict(permissions or ALL_PERMISSIONS)}

    def add_app(
        self,
        app_id: int,
        public_key_pem: bytes,
        *,
        slug: str = "flowbot-app",
        installations: tuple[int, ...] = (1,),
        token_lifetime_s: int = 3600,
    ) -> None:
        """A GitHub App: its JWTs are checked against the public key, its installations get
        tokens (login "<slug>[bot]") from POST /app/installations/{id}/access_tokens."""
        self.apps[str(app_id)] = {
            "public_key": public_key_pem,
            "slug": slug,
            "installations": set(installations),
            "lifetime": token_lifetime_s,
        }

    @property
    def minted(self) -> list[Recorded]:
        """The installation token requests, in order."""
        return self.requests_to("POST", r"/app/installations/\d+/access_tokens")

    def add_repo(self, full_name: str) -> dict[str, Any]:
        return self.repos.setdefault(
            full_name.lower(),
            {"full_name": full_name, "pulls": {}, "issues": {}, "labels": {}},
        )

    def add_pull(
        self,
        full_name: str,
        number: int,
        *,
        title: str = "A change",
        body: str = "",
        files: list[dict[str, Any]] | None = None,
        author: str = "octocat",
    ) -> dict[str, Any]:
        repo = self.add_repo(full_name)
        pull = {
            "id": 100000 + number,
            "number": number,
            "title": title,
            "body": body,
            "state": "open",
            "user": {"login": author},
            "head": {"ref": "feature", "sha": "abc123"},
            "base": {"ref": "main", "sha": "def456"},
            "html_url": f"https://github.com/{full_name}/pull/{number}",
            "changed_files": len(files or []),
        }
        repo["pulls"][number] = {"pull": pull, "files": list(files or [])}
        repo["issues"].setdefault(number, {"labels": []})
        return pull

    def add_comment(self, full_name: str, number: int, body: str, login: str = "octocat") -> dict:
        self.add_repo(full_name)["issues"].setdefault(number, {"labels": []})
        self.next_id += 1
        comment = {
            "id": self.next_id,
            "body": body,
            "user": {"login": login, "type": "User"},
            "issue_number": number,
            "repo": full_name.lower(),
            "html_url": f"https://github.com/{full_name}/issues/{number}#issuecomment-{self.next_id}",
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
        }
        self.comments[self.next_id] = comment
        return comment

    def add_file(self, full_name: str, path: str, content: str) -> None:
        """A file of the repository's default branch (read with the contents API, found by
        code search)."""
        self.add_repo(full_name).setdefault("files", {})[path] = content

    def comments_on(self, full_name: str, number: int) -> list[dict[str, Any]]:
        return [
            c
            for c in self.comments.values()
            if c["repo"] == full_name.lower() and c["issue_number"] == number
        ]

    def labels_on(self, full_name: str, number: int) -> list[str]:
        return list(self.repos[full_name.lower()]["issues"][number]["labels"])

    def rate_limit_next(self, retry_after: int = 1, *, times: int = 1) -> None:
        """GitHub's secondary rate limit: 403 with Retry-After."""
        self.fail_next(
            403,
            {
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes "
                "before you try again.",
                "documentation_url": DOCS,
            },
            headers={"Retry-After": str(retry_after)},
            times=times,
        )

    def exhaust_rate_limit(self, resets_in: int = 3600) -> None:
        """GitHub's primary rate limit: 403 with x-ratelimit-remaining 0 until reset."""
        self.fail_next(
            403,
            {"message": "API rate limit exceeded for user ID 1.", "documentation_url": DOCS},
            headers={
                "x-ratelimit-limit": "5000",
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": str(int(time.time()) + resets_in),
            },
        )

    # API ---------------------------------------------------------------------------------------
    def routes(self):
        return [
            ("GET", r"/user", self.get_user),
            ("GET", rf"/repos/{REPO}", self.get_repo),
            ("GET", rf"/repos/{REPO}/pulls/(?P<number>\d+)", self.get_pull),
            ("PATCH", rf"/repos/{REPO}/pulls/(?P<number>\d+)", self.update_pull),
            ("GET", rf"/repos/{REPO}/pulls/(?P<number>\d+)/files", self.list_files),
            ("GET", rf"/repos/{REPO}/issues/(?P<number>\d+)/comments", self.list_comments),
            ("POST", rf"/repos/{REPO}/issues/(?P<number>\d+)/comments", self.create_comment),
            ("PATCH", rf"/repos/{REPO}/issues/comments/(?P<cid>\d+)", self.update_comment),
            ("DELETE", rf"/repos/{REPO}/issues/comments/(?P<cid>\d+)", self.delete_comment),
            ("GET", rf"/repos/{REPO}/issues/(?P<number>\d+)/labels", self.list_labels),
            ("POST", rf"/repos/{REPO}/issues/(?P<number>\d+)/labels", self.add_labels),
            (
                "DELETE",
                rf"/repos/{REPO}/issues/(?P<number>\d+)/labels/(?P<label>[^/]+)",
                self.remove_label,
            ),
            ("POST", rf"/repos/{REPO}/issues", self.create_issue),
            ("GET", rf"/repos/{REPO}/contents/(?P<path>.+)", self.get_contents),
            ("GET", rf"/repos/{REPO}/pulls", self.list_pulls),
            ("GET", r"/search/code", self.search_code),
        ]

    def answer(self, request: Recorded) -> Answer:
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").removeprefix("token ")
        if request.path == "/app" or request.path.startswith("/app/"):
            with self.lock:
                self.requests.append(request)
                return self.as_app(request, token)
        known = self.tokens.get(token)
        if known is None or known.get("expires_at", float("inf")) <= time.time():
            with self.lock:
                self.requests.append(request)
            return Answer(401, {"message": "Bad credentials", "documentation_url": DOCS})
        return super().answer(request)

    # the App's own endpoints, authenticated by its JWT ---------------------------------------
    def as_app(self, request: Recorded, token: str) -> Answer:
        app, problem = self._verify_jwt(token)
        if app is None:
            return Answer(401, {"message": problem, "documentation_url": DOCS})
        if request.method == "GET" and request.path == "/app":
            return Answer(200, {"id": int(app["id"]), "slug": app["slug"], "name": app["slug"]})
        match = re.fullmatch(r"/app/installations/(\d+)/access_tokens", request.path)
        if request.method != "POST" or not match:
            return not_found()
        if int(match.group(1)) not in app["installations"]:
            return not_found()
        minted = "ghs_" + secrets.token_hex(18)
        expires = time.time() + app["lifetime"]
        self.tokens[minted] = {
            "login": f"{app['slug']}[bot]",
            "permissions": dict(ALL_PERMISSIONS),
            "installation": int(match.group(1)),
            "expires_at": expires,
        }
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
        return Answer(
            201,
            {"token": minted, "expires_at": stamp, "permissions": dict(ALL_PERMISSIONS)},
        )

    def _verify_jwt(self, token: str) -> tuple[dict[str, Any] | None, str]:
        """The App whose key signed this RS256 JWT with GitHub's claims, or why not."""
        try:
            header = jwt.get_unverified_header(token)
            issuer = str(jwt.decode(token, options={"verify_signature": False}).get("iss"))
        except jwt.PyJWTError:
            return None, "A JSON web token could not be decoded"
        app = self.apps.get(issuer)
        if app is None or header.get("alg") != "RS256":
            return None, "A JSON web token could not be decoded"
        try:
            claims = jwt.decode(
                token,
                app["public_key"],
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"]},
                leeway=0,
            )
        except jwt.ExpiredSignatureError:
            return (
                None,
                "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
            )
        except jwt.PyJWTError:
            return None, "A JSON web token could not be decoded"
        now = time.time()
        if claims["exp"] - now > 600:
            return None, "'Expiration time' claim ('exp') is too far in the future"
        if claims["iat"] > now + 1:
            return (
                None,
                "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
            )
        return {**app, "id": issuer}, ""

    def _caller(self, request: Recorded) -> dict[str, Any]:
        auth = request.headers["authorization"]
        return self.tokens[auth.removeprefix("Bearer ").removeprefix("token ")]

    def _denied(self, request: Recorded, *needs: str) -> Answer | None:
        """403 with X-Accepted-GitHub-Permissions unless the token holds one of `needs`."""
        held = self._caller(request)["permissions"]
        for need in needs:
            name, _, level = need.partition("=")
            if LEVELS.get(held.get(name, ""), 0) >= LEVELS[level]:
                return None
        return Answer(
            403,
            {
                "message": "Resource not accessible by personal access token",
                "documentation_url": DOCS,
            },
            {"X-Accepted-GitHub-Permissions": "; ".join(needs)},
        )

    def _repo(self, owner: str, name: str) -> dict[str, Any] | None:
        return self.repos.get(f"{owner}/{name}".lower())

    def get_user(self, request: Recorded) -> Answer:
        caller = self._caller(request)
        if "installation" in caller:
            return Answer(
                403,
                {"message": "Resource not accessible by integration", "documentation_url": DOCS},
            )
        return Answer(200, {"login": caller["login"], "id": 1, "type": "User"})

    def get_repo(self, request: Recorded, owner: str, name: str) -> Answer:
        repo = self._repo(owner, name)
        return Answer(200, {"full_name": repo["full_name"]}) if repo else not_found()

    def get_pull(self, request: Recorded, owner: str, name: str, number: str) -> Answer:
        repo = self._repo(owner, name)
        entry = repo and repo["pulls"].get(int(number))
        if not entry:
            return not_found()
        if request.headers.get("accept") == "application/vnd.github.diff":
            diff = "".join(
                f"diff --git a/{f['filename']} b/{f['filename']}\n{f.get('patch', '')}\n"
                for f in entry["files"]
            )
            return Answer(200, diff.encode(), {"Content-Type": "text/plain; charset=utf-8"})
        return Answer(200, entry["pull"])

    def update_pull(self, request: Recorded, owner: str, name: str, number: str) -> Answer:
        if denied := self._denied(request, "pull_requests=write"):
            return denied
        repo = self._repo(owner, name)
        entry = repo and repo["pulls"].get(int(number))
        if not entry:
            return not_found()
        entry["pull"].update({k: v for k, v in request.json.items() if k in ("title", "body")})
        return Answer(200, entry["pull"])

    def _page(self, request: Recorded, items: list) -> Answer:
        per_page = min(int(request.query.get("per_page", 30)), 100)
        page = int(request.query.get("page", 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        last = max(1, -(-len(items) // per_page))
        headers = {}
        if page < last:
            base = f"{self.url}{request.path}?per_page={per_page}"
            headers["Link"] = (
                f'<{base}&page={page + 1}>; rel="next", <{base}&page={last}>; rel="last"'
            )
        return Answer(200, chunk, headers)

    def list_files(self, request: Recorded, owner: str, name: str, number: str) -> Answer:
        repo = self._repo(owner, name)
        entry = repo and repo["pulls"].get(int(number))
        if not entry:
            return not_found()
        return self._page(request, entry["files"])

    def _issue(self, owner: str, name: str, number: str) -> dict[str, Any] | None:
        repo = self._repo(owner, name)
        return repo and repo["issues"].get(int(number))

    def list_comments(self, request: Recorded, owner: str, name: str, number: str) -> Answer:
        if self._issue(owner, name, number) is None:
            return not_found()
        return self._page(request, self.comments_on(f"{owner}/{name}", int(number)))

    def create_comment(self, request: Recorded, owner: str, name: str, number: str) -> Answer:
        if denied := self._denied(request, "issues=write", "pull_requests=write"):
            return denied
        if self._issue(owner, name, number) is None:
            return not_found()
        body = (request.json or {}).get("body") or ""
        if not body.strip():
            return Answer(
                422,
                {
                    "message": "Validation Failed",
                    "errors": [
                        {"resource": "IssueComment", "code": "missing_field", "field": "body"}
                    ],
                    "documentation_url": DOCS,
                },
            )
        comment = self.add_comment(
            f"{owner}/{name}", int(number), body, self._caller(request)["login"]
        )
        return Answer(201, comment)

    def update_comment(self, request: Recorded, owner: str, name: str, cid: str) -> Answer:
        if denied := self._denied(request, "issues=write", "pull_requests=write"):
            return denied
        comment = self.comments.get(int(cid))
        if comment is None or comment["repo"] != f"{owner}/{name}".lower():
            return not_found()
        if comment["user"]["login"] != self._caller(request)["login"]:
            return Answer(
                403, {"message": "You cannot edit this comment", "documentation_url": DOCS}
            )
        comment["body"] = request.json["body"]
        comment["updated_at"] = "2024-01-02T00:00:00Z"
        return Answer(200, comment)

    def delete_comment(self, request: Recorded, owner: str, name: str, cid: str) -> Answer:
        if self.comments.pop(int(cid), None) is None:
            return not_found()
        return Answer(204, b"")

    @staticmethod
    def _label_list(issue: dict[str, Any]) -> list[dict[str, str]]:
        return [{"name": label, "color": "ededed"} for label in issue["labels"]]

    def list_labels(self, request: Recorded, owner: str, name: str, number: str) -> Answer:
        issue = self._issue(owner, name, number)
        if issue is None:
            return not_found()
        return Answer(200, self._label_list(issue))

    def remove_label(
        self, request: Recorded, owner: str, name: str, number: str, label: str
    ) -> Answer:
        if denied := self._denied(request, "issues=write", "pull_requests=write"):
            return denied
        issue = self._issue(owner, name, number)
        if issue is None:
            return not_found()
        label = unquote(label)
        if label not in issue["labels"]:
            return Answer(404, {"message": "Label does not exist", "documentation_url": DOCS})
        issue["labels"].remove(label)
        return Answer(200, self._label_list(issue))

    def add_labels(self, request: Recorded, owner: str, name: str, number: str) -> Answer:
        if denied := self._denied(request, "issues=write", "pull_requests=write"):
            return denied
        issue = self._issue(owner, name, number)
        if issue is None:
            return not_found()
        for label in request.json["labels"]:
            if label not in issue["labels"]:
                issue["labels"].append(label)
        return Answer(200, [{"name": label, "color": "ededed"} for label in issue["labels"]])

    def create_issue(self, request: Recorded, owner: str, name: str) -> Answer:
        if denied := self._denied(request, "issues=write"):
            return denied
        repo = self._repo(owner, name)
        if repo is None:
            return not_found()
        data = request.json
        number = max([0, *repo["issues"], *repo["pulls"]]) + 1
        repo["issues"][number] = {"labels": list(data.get("labels") or [])}
        return Answer(
            201,
            {
                "number": number,
                "title": data["title"],
                "body": data.get("body"),
                "labels": [{"name": label} for label in data.get("labels") or []],
                "user": {"login": self._caller(request)["login"]},
                "html_url": f"https://github.com/{repo['full_name']}/issues/{number}",
            },
        )

    # files, code search and the list of pull requests ---------------------------------------
    def get_contents(self, request: Recorded, owner: str, name: str, path: str) -> Answer:
        repo = self._repo(owner, name)
        files = (repo or {}).get("files", {})
        path = unquote(path).strip("/")
        if path in files:
            data = files[path].encode()
            return Answer(
                200,
                {
                    "type": "file",
                    "name": path.rsplit("/", 1)[-1],
                    "path": path,
                    "size": len(data),
                    "encoding": "base64",
                    "content": base64.encodebytes(data).decode(),
                },
            )
        inside = sorted({p for p in files if p.startswith(path + "/")})
        if not inside:
            return not_found()
        entries: dict[str, str] = {}
        for found in inside:
            rest = found[len(path) + 1 :]
            entries.setdefault(rest.split("/")[0], "dir" if "/" in rest else "file")
        return Answer(
            200,
            [{"name": n, "path": f"{path}/{n}", "type": t} for n, t in sorted(entries.items())],
        )

    def list_pulls(self, request: Recorded, owner: str, name: str) -> Answer:
        repo = self._repo(owner, name)
        if repo is None:
            return not_found()
        state = request.query.get("state", "open")
        pulls = [p["pull"] for p in repo["pulls"].values()]
        pulls = [p for p in pulls if state == "all" or p["state"] == state]
        pulls.sort(key=lambda p: p["number"], reverse=True)
        return self._page(request, pulls)

    def search_code(self, request: Recorded) -> Answer:
        words = request.query.get("q", "").split()
        scope = [w.removeprefix("repo:") for w in words if w.startswith("repo:")]
        terms = [w.lower() for w in words if not w.startswith("repo:")]
        items = []
        for full_name in scope:
            repo = self.repos.get(full_name.lower()) or {}
            for path, content in sorted(repo.get("files", {}).items()):
                if all(t in content.lower() or t in path.lower() for t in terms):
                    items.append(
                        {
                            "name": path.rsplit("/", 1)[-1],
                            "path": path,
                            "html_url": f"https://github.com/{full_name}/blob/main/{path}",
                        }
                    )
        return Answer(200, {"total_count": len(items), "incomplete_results": False, "items": items})
