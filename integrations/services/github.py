"""GitHub: pull requests, issue comments (with a hidden marker to find our own), labels, issues.

A thin client on the shared HTTP path rather than a GitHub library: every call then gets the same
timeouts, retries, size cap and worded errors as the other services, and nothing heavy is added.
Auth is a token (connection secret `token`: a fine-grained or classic personal access token, or a
GitHub App installation token), or a GitHub App (config `app_id`, optional `installation_id`,
secret `private_key`; see github_app). The API base is FLOWS_GITHUB_API_URL, or the connection's `api_url`
(GitHub Enterprise: https://github.example.com/api/v3).
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any
from urllib.parse import quote

import httpx
from django.conf import settings

from flows.capabilities import CapabilityContext, CapabilityError
from flows.catalog import Param
from flows.locks import named_lock
from integrations.capabilities import offer
from integrations.services import github_app
from integrations.services.base import ServiceClient, ServiceError, seconds, short_detail

REPO_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
MARKER_PATTERN = re.compile(r"^[A-Za-z0-9_.:/-]{1,100}$")
# GitHub answers at most 100 items a page and 3000 files a pull request.
PER_PAGE = 100
MAX_PAGES = 50

REPO = Param(
    "repo",
    "string",
    label="Repository",
    required=True,
    default="{{ event.payload.repository.full_name }}",
    description="owner/name",
)
NUMBER = Param(
    "number",
    "integer",
    label="Pull request or issue number",
    required=True,
    default="{{ event.payload.pull_request.number or event.payload.issue.number }}",
    description="the pull request or issue number",
)
BODY = Param("body", "text", label="Body", required=True, description="Markdown text")
MARKER = Param(
    "marker",
    "string",
    label="Marker",
    required=True,
    default="review",
    description="a name for our comment, kept in it as a hidden HTML comment",
)


# The repository permissions (of a fine-grained token or a GitHub App) each capability needs.
PR_READ = (("Pull requests", "read"), ("Contents", "read"))
WRITE = (("Issues", "read and write"), ("Pull requests", "read and write"))
PERMISSIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "github.pr.get": PR_READ,
    "github.pr.files": PR_READ,
    "github.pr.diff": PR_READ,
    "github.pr.update": (("Pull requests", "read and write"),),
    "github.comments.list": (("Issues", "read"),),
    "github.comment.find": (("Issues", "read"),),
    "github.comment.create": WRITE,
    "github.comment.update": WRITE,
    "github.comment.upsert": WRITE,
    "github.labels.add": WRITE,
    "github.labels.remove": WRITE,
    "github.issue.create": (("Issues", "read and write"),),
    "github.issue.reply": WRITE,
    "github.file.read": (("Contents", "read"),),
    "github.code.search": (("Contents", "read"),),
    "github.pulls.list": (("Pull requests", "read"),),
}
# The most of a file github.file.read hands back: a step or an agent wants to read it, not load
# a build artifact.
FILE_MAX_CHARS = 100_000
SEARCH_MAX_RESULTS = 30
# The names of webhook events on a GitHub App's settings page ("Subscribe to events").
APP_EVENTS = {
    "pull_request": "Pull request",
    "issue_comment": "Issue comment",
    "issues": "Issues",
    "push": "Push",
    "pull_request_review": "Pull request review",
    "pull_request_review_comment": "Pull request review comment",
    "release": "Release",
}


def permissions_needed(capabilities: list[str]) -> list[str]:
    """'Issues: read and write', ... for these capabilities, Metadata: read (always) included."""
    levels: dict[str, str] = {"Metadata": "read"}
    for name in capabilities:
        for permission, level in PERMISSIONS.get(name, ()):
            if levels.get(permission) != "read and write":
                levels[permission] = level
    return [f"{permission}: {level}" for permission, level in sorted(levels.items())]


def marker_tag(marker: str) -> str:
    return f"<!-- flowbuilder:{marker} -->"


def _permissions(header: str) -> str:
    """'pull_requests=write; issues=write,contents=read' -> words."""
    alternatives = []
    for option in header.split(";"):
        perms = [p.strip().replace("=", ": ") for p in option.split(",") if p.strip()]
        if perms:
            alternatives.append(" and ".join(perms))
    plural = "permissions" if any(" and " in a for a in alternatives) else "permission"
    return f"the {' or '.join(alternatives)} {plural}"


class GitHub(ServiceClient):
    service = "github"
    name = "GitHub"

    def __init__(
        self,
        config: dict,
        secrets: dict | None,
        log=None,
        limits: dict | None = None,
        event_installation: str = "",
    ):
        api_url = (config.get("api_url") or "").strip()
        base_url = self.api_url(config)
        self.app: github_app.AppCredentials | None = None
        if github_app.is_app(config):
            self.app = github_app.credentials_for(
                config, secrets or {}, base_url, event_installation
            )
            token = github_app.installation_token(self.app, log=log)
        else:
            token = (secrets or {}).get("token", "")
        if not token:
            raise CapabilityError("The GitHub connection has no token: add one to the connection.")
        super().__init__(
            base_url=base_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
            # The operator's setting is trusted; a URL typed into a connection is not.
            guard=bool(api_url),
            secrets=[token],
            log=log,
        )
        self.limits = limits or {}

    @staticmethod
    def api_url(config: dict) -> str:
        return ((config.get("api_url") or "").strip() or settings.FLOWS_GITHUB_API_URL).rstrip("/")

    @classmethod
    def for_context(cls, ctx: CapabilityContext) -> GitHub:
        config = ctx.connection_config or {}
        installation = ""
        if github_app.is_app(config) and not config.get("installation_id"):
            installation = _event_installation(ctx.run_id)
        return cls(config, ctx.secrets, ctx.log, ctx.limits, installation)

    def send(self, request: httpx.Request, *, what: str = "") -> httpx.Response:
        try:
            return super().send(request, what=what)
        except ServiceError as exc:
            if exc.status != 401 or self.app is None:
                raise
        # GitHub refused the App's cached token (revoked, or the installation changed): once
        # more with a fresh one.
        self.log("warning", "GitHub refused the App's installation token; signing in again.")
        token = github_app.installation_token(self.app, fresh=True, log=self._log)
        self.secrets.append(token)
        self.client.headers["Authorization"] = f"Bearer {token}"
        request.headers["Authorization"] = f"Bearer {token}"
        return super().send(request, what=what)

    def check_repo(self, repo: str) -> str:
        repo = repo.strip()
        if not REPO_PATTERN.match(repo):
            raise CapabilityError(f"'repo' must look like owner/name, got {repo!r}.")
        allowed = self.limits.get("repos")
        if allowed is not None and not any(_repo_matches(repo, a) for a in allowed):
            listed = ", ".join(allowed) or "none"
            raise CapabilityError(
                f"This step may use only these GitHub repositories: {listed}; "
                f"{repo} is not one of them."
            )
        return repo

    def error_for(self, response: httpx.Response, what: str) -> ServiceError:
        status = response.status_code
        headers = response.headers
        detail = short_detail(response)
        if status == 401:
            return self.fail("GitHub says the token is invalid or has expired (Bad credentials).")
        if status in (403, 429):
            if headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in headers:
                wait = self.retry_delay(response) or 0
                return self.fail(
                    f"GitHub's API rate limit for this token is used up; it resets in "
                    f"{seconds(wait)}.",
                    retryable=True,
                )
            if "retry-after" in headers or "rate limit" in detail.lower():
                wait = self.retry_delay(response)
                asks = f"; it asks to wait {seconds(wait)}" if wait is not None else ""
                return self.fail(
                    f"GitHub's secondary rate limit was hit{asks}.",
                    retryable=True,
                )
            if accepted := headers.get("x-accepted-github-permissions"):
                return self.fail(f"GitHub says this token lacks {_permissions(accepted)}.")
            return self.fail(f"GitHub refused {what or 'the request'}: {detail or 'Forbidden'}.")
        if status == 404:
            return self.fail(f"GitHub says {what or 'the resource'} was not found.")
        if status == 406 and "diff" in detail.lower():
            return self.fail(
                f"GitHub cannot produce the diff of {what}: {detail}. "
                "Use github.pr.files for the per-file patches instead."
            )
        if status == 410:
            return self.fail(f"GitHub says {what or 'the resource'} is gone: {detail}.")
        if status == 422:
            errors = _validation_errors(response)
            return self.fail(f"GitHub rejected {what or 'the request'}: {detail}{errors}.")
        return super().error_for(response, what)

    def retry_delay(self, response: httpx.Response) -> float | None:
        headers = response.headers
        if headers.get("x-ratelimit-remaining") == "0" and "retry-after" not in headers:
            try:
                return max(0.0, float(headers["x-ratelimit-reset"]) - time.time())
            except (KeyError, ValueError):
                return None
        return super().retry_delay(response)

    def call(
        self, method: str, path: str, *, repo: str, what: str, **kwargs: Any
    ) -> httpx.Response:
        """A request about `repo`; a 404 is told apart: missing repository or missing `what`."""
        try:
            return self.request(method, path, what=what, **kwargs)
        except ServiceError as exc:
            if exc.status != 404:
                raise
        try:
            self.request("GET", f"/repos/{repo}", what=f"the repository {repo}")
        except ServiceError as exc:
            if exc.status != 404:
                raise
            raise self.fail(
                f"GitHub says the repository {repo} was not found or the token cannot see it.",
                status=404,
            ) from None
        raise self.fail(f"GitHub says {what} was not found.", status=404)

    def paginate(self, path: str, *, repo: str, what: str) -> list:
        """Every item of a listing, following the Link header's `next` pages."""
        items: list = []
        url: str | None = path
        params: dict | None = {"per_page": PER_PAGE}
        origin = httpx.URL(str(self.client.base_url)).copy_with(path="/", query=None)
        for _ in range(MAX_PAGES):
            response = self.call("GET", url, repo=repo, what=what, params=params)
            page = response.json()
            if not isinstance(page, list):
                raise self.fail(f"GitHub answered with something other than a list for {what}.")
            items.extend(page)
            url = response.links.get("next", {}).get("url")
            if not url:
                return items
            # The token goes only to the API's own origin, whatever a Link header says.
            if httpx.URL(url).copy_with(path="/", query=None) != origin:
                raise self.fail(f"GitHub's next page of {what} points to another host.")
            params = None
        self.log("warning", f"Stopped after {MAX_PAGES} pages of {what}.")
        return items

    def viewer_login(self) -> str | None:
        """The token's own login ("<app slug>[bot]" for a GitHub App), or None for tokens that
        cannot read /user (an installation token pasted as a token)."""
        if self.app is not None:
            return github_app.app_login(self.app, log=self._log)
        try:
            return self.request("GET", "/user", what="the token's user").json().get("login")
        except ServiceError as exc:
            if exc.status in (403, 404):
                return None
            raise

    def find_comment(self, repo: str, number: int, marker: str) -> dict | None:
        tag = marker_tag(check_marker(marker))
        comments = self.paginate(
            f"/repos/{repo}/issues/{number}/comments",
            repo=repo,
            what=f"the comments of {repo}#{number}",
        )
        login = self.viewer_login()
        for comment in comments:
            author = (comment.get("user") or {}).get("login")
            if tag in (comment.get("body") or "") and (login is None or author == login):
                return comment
        return None


def _event_installation(run_id: int | None) -> str:
    """The installation id a GitHub App's webhook delivery names (`installation.id`), if any."""
    from flows.models import Run

    if run_id is None:
        return ""
    event = Run.objects.filter(pk=run_id).values_list("event", flat=True).first()
    payload = event.get("payload") if isinstance(event, dict) else None
    installation = payload.get("installation") if isinstance(payload, dict) else None
    value = installation.get("id") if isinstance(installation, dict) else None
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else ""


def _repo_matches(repo: str, allowed: str) -> bool:
    owner, _, name = allowed.strip().lower().partition("/")
    want_owner, _, want_name = repo.lower().partition("/")
    return owner == want_owner and name in {want_name, "*"}


def _validation_errors(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return ""
    parts = []
    for error in errors:
        if isinstance(error, dict):
            text = error.get("message") or " ".join(
                str(error[k]) for k in ("resource", "field", "code") if error.get(k)
            )
            parts.append(text)
        else:
            parts.append(str(error))
    return f" ({'; '.join(parts)})" if parts else ""


def check_marker(marker: str) -> str:
    if not MARKER_PATTERN.match(marker):
        raise CapabilityError(
            f"'marker' may hold only letters, digits and _ . : / - (at most 100), got {marker!r}."
        )
    return marker


def with_marker(body: str, marker: str) -> str:
    tag = marker_tag(marker)
    return body if tag in body else f"{body}\n\n{tag}"


@offer(
    "github.pr.get",
    service="github",
    title="GitHub: get a pull request",
    description="Fetch a pull request: title, body, author, branches, state.",
    params=(REPO, NUMBER),
    result="GitHub's pull request object",
)
def pr_get(ctx: CapabilityContext, payload: dict) -> dict:
    with GitHub.for_context(ctx) as gh:
        repo, number = gh.check_repo(payload["repo"]), payload["number"]
        what = f"pull request {repo}#{number}"
        return gh.call("GET", f"/repos/{repo}/pulls/{number}", repo=repo, what=what).json()


@offer(
    "github.pr.files",
    service="github",
    title="GitHub: list a pull request's files",
    description="Every changed file of a pull request with its patch, all pages.",
    params=(REPO, NUMBER),
    result="list of GitHub file objects: filename, status, additions, deletions, patch",
)
def pr_files(ctx: CapabilityContext, payload: dict) -> list:
    with GitHub.for_context(ctx) as gh:
        repo, number = gh.check_repo(payload["repo"]), payload["number"]
        return gh.paginate(
            f"/repos/{repo}/pulls/{number}/files",
            repo=repo,
            what=f"the files of pull request {repo}#{number}",
        )


@offer(
    "github.pr.diff",
    service="github",
    title="GitHub: get a pull request's diff",
    description="The whole change of a pull request as one unified diff.",
    params=(REPO, NUMBER),
    result="{diff: text}",
)
def pr_diff(ctx: CapabilityContext, payload: dict) -> dict:
    with GitHub.for_context(ctx) as gh:
        repo, number = gh.check_repo(payload["repo"]), payload["number"]
        response = gh.call(
            "GET",
            f"/repos/{repo}/pulls/{number}",
            repo=repo,
            what=f"pull request {repo}#{number}",
            headers={"Accept": "application/vnd.github.diff"},
        )
        return {"diff": response.text}


@offer(
    "github.file.read",
    service="github",
    title="GitHub: read a file",
    description="Read a text file of a repository (or list a folder), at a branch, tag or commit.",
    params=(
        REPO,
        Param("path", "string", label="Path", required=True, description="e.g. src/app.py"),
        Param(
            "ref",
            "string",
            label="Branch, tag or commit",
            description="defaults to the repository's default branch",
        ),
    ),
    result="{path, type: file, size, content, truncated} or {path, type: dir, entries: [{name, "
    "path, type}]}",
)
def file_read(ctx: CapabilityContext, payload: dict) -> dict:
    path = payload["path"].strip().strip("/")
    if ".." in path.split("/"):
        raise CapabilityError(f"'path' may not climb out of the repository: {path!r}.")
    params = {"ref": payload["ref"]} if payload.get("ref") else None
    with GitHub.for_context(ctx) as gh:
        repo = gh.check_repo(payload["repo"])
        found = gh.call(
            "GET",
            f"/repos/{repo}/contents/{quote(path)}",
            repo=repo,
            what=f"the file {path} in {repo}",
            params=params,
        ).json()
    if isinstance(found, list):
        entries = [
            {"name": e.get("name"), "path": e.get("path"), "type": e.get("type")}
            for e in found
            if isinstance(e, dict)
        ]
        return {"path": path, "type": "dir", "entries": entries}
    if not isinstance(found, dict) or found.get("type") != "file":
        raise CapabilityError(f"{path} in {repo} is not a file or a folder.")
    try:
        text = base64.b64decode(found.get("content") or "").decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise CapabilityError(f"{path} in {repo} is a binary file, not text.") from None
    return {
        "path": path,
        "type": "file",
        "size": found.get("size", len(text)),
        "content": text[:FILE_MAX_CHARS],
        "truncated": len(text) > FILE_MAX_CHARS,
    }


@offer(
    "github.code.search",
    service="github",
    title="GitHub: search code",
    description="Search a repository's code (GitHub code search) and list the matching files.",
    params=(
        REPO,
        Param("query", "string", label="Query", required=True, description="words to look for"),
    ),
    result="{total_count, items: [{path, name, html_url}]}",
)
def code_search(ctx: CapabilityContext, payload: dict) -> dict:
    with GitHub.for_context(ctx) as gh:
        repo = gh.check_repo(payload["repo"])
        found = gh.request(
            "GET",
            "/search/code",
            what=f"a code search in {repo}",
            params={"q": f"{payload['query']} repo:{repo}", "per_page": SEARCH_MAX_RESULTS},
        ).json()
    items = [
        {"path": i.get("path"), "name": i.get("name"), "html_url": i.get("html_url")}
        for i in (found.get("items") or [])[:SEARCH_MAX_RESULTS]
        if isinstance(i, dict)
    ]
    return {"total_count": found.get("total_count", len(items)), "items": items}


@offer(
    "github.pulls.list",
    service="github",
    title="GitHub: list pull requests",
    description="The repository's pull requests, most recently updated first.",
    params=(
        REPO,
        Param(
            "state",
            "choice",
            label="State",
            default="all",
            choices=("open", "closed", "all"),
            description="open, closed or all",
        ),
        Param("limit", "integer", label="How many", default=10, description="at most 100"),
    ),
    result="list of {number, title, state, user, updated_at, merged_at, html_url}",
)
def pulls_list(ctx: CapabilityContext, payload: dict) -> list:
    limit = max(1, min(int(payload["limit"]), PER_PAGE))
    with GitHub.for_context(ctx) as gh:
        repo = gh.check_repo(payload["repo"])
        pulls = gh.call(
            "GET",
            f"/repos/{repo}/pulls",
            repo=repo,
            what=f"the pull requests of {repo}",
            params={
                "state": payload["state"],
                "sort": "updated",
                "direction": "desc",
                "per_page": limit,
            },
        ).json()
    return [
        {
            "number": p.get("number"),
            "title": p.get("title"),
            "state": p.get("state"),
            "user": (p.get("user") or {}).get("login"),
            "updated_at": p.get("updated_at"),
            "merged_at": p.get("merged_at"),
            "html_url": p.get("html_url"),
        }
        for p in pulls[:limit]
        if isinstance(p, dict)
    ]


@offer(
    "github.pr.update",
    service="github",
    title="GitHub: update a pull request",
    description="Change a pull request's title and/or body.",
    params=(
        REPO,
        NUMBER,
        Param("title", "string", label="Title", description="new title"),
        Param("body", "text", label="Body", description="new body (Markdown)"),
    ),
    result="GitHub's pull request object",
    writes=True,
)
def pr_update(ctx: CapabilityContext, payload: dict) -> dict:
    changes = {k: payload[k] for k in ("title", "body") if k in payload}
    if not changes:
        raise CapabilityError("github.pr.update needs a 'title' or a 'body' to change.")
    with GitHub.for_context(ctx) as gh:
        repo, number = gh.check_repo(payload["repo"]), payload["number"]
        what = f"pull request {repo}#{number}"
        return gh.call(
            "PATCH", f"/repos/{repo}/pulls/{number}", repo=repo, what=what, json=changes
        ).json()


@offer(
    "github.comments.list",
    service="github",
    title="GitHub: list comments",
    description="Every comment on a pull request or issue, all pages.",
    params=(REPO, NUMBER),
    result="list of GitHub comment objects: id, body, user, created_at",
)
def comments_list(ctx: CapabilityContext, payload: dict) -> list:
    with GitHub.for_context(ctx) as gh:
        repo, number = gh.check_repo(payload["repo"]), payload["number"]
        return gh.paginate(
            f"/repos/{repo}/issues/{number}/comments",
            repo=repo,
            what=f"the comments of {repo}#{number}",
        )


def _create_comment(gh: GitHub, repo: str, number: int, body: str) -> dict:
    return gh.call(
        "POST",
        f"/repos/{repo}/issues/{number}/comments",
        repo=repo,
        what=f"pull request or issue {repo}#{number}",
        json={"body": body},
    ).json()


@offer(
    "github.comment.create",
    service="github",
    title="GitHub: add a comment",
    description="Post a new comment on a pull request or issue.",
    params=(REPO, NUMBER, BODY),
    result="GitHub's comment object",
    writes=True,
)
def comment_create(ctx: CapabilityContext, payload: dict) -> dict:
    with GitHub.for_context(ctx) as gh:
        repo = gh.check_repo(payload["repo"])
        return _create_comment(gh, repo, payload["number"], payload["body"])


@offer(
    "github.comment.update",
    service="github",
    title="GitHub: edit a comment",
    description="Replace the body of a comment, by its id.",
    params=(
        REPO,
        Param("comment_id", "integer", label="Comment id", required=True),
        BODY,
    ),
    result="GitHub's comment object",
    writes=True,
)
def comment_update(ctx: CapabilityContext, payload: dict) -> dict:
    with GitHub.for_context(ctx) as gh:
        repo = gh.check_repo(payload["repo"])
        comment_id = payload["comment_id"]
        return gh.call(
            "PATCH",
            f"/repos/{repo}/issues/comments/{comment_id}",
            repo=repo,
            what=f"comment {comment_id} in {repo}",
            json={"body": payload["body"]},
        ).json()


@offer(
    "github.comment.find",
    service="github",
    title="GitHub: find our comment",
    description=(
        "Find the comment this bot posted with the given marker (hidden in an HTML comment), "
        "or nothing."
    ),
    params=(REPO, NUMBER, MARKER),
    result="GitHub's comment object, or null",
)
def comment_find(ctx: CapabilityContext, payload: dict) -> dict | None:
    with GitHub.for_context(ctx) as gh:
        repo = gh.check_repo(payload["repo"])
        return gh.find_comment(repo, payload["number"], payload["marker"])


@offer(
    "github.comment.upsert",
    service="github",
    title="GitHub: create or update our comment",
    description=(
        "Edit the comment this bot posted with the given marker, or post it if there is none "
        "(also when it was deleted). Keeps one comment per marker instead of piling up new ones."
    ),
    params=(REPO, NUMBER, MARKER, BODY),
    result="{comment: GitHub's comment object, created: true when a new comment was posted}",
    writes=True,
)
def comment_upsert(ctx: CapabilityContext, payload: dict) -> dict:
    with GitHub.for_context(ctx) as gh:
        repo, number = gh.check_repo(payload["repo"]), payload["number"]
        marker = check_marker(payload["marker"])
        # Runs for the same pull request at the same moment would each find no comment and
        # each post one: finding and writing happen under one lock per comment.
        with named_lock(f"github-comment:{repo.lower()}#{number}:{marker}"):
            return _upsert(gh, repo, number, marker, with_marker(payload["body"], marker))


def _upsert(gh: GitHub, repo: str, number: int, marker: str, body: str) -> dict:
    existing = gh.find_comment(repo, number, marker)
    if existing is not None:
        try:
            comment = gh.request(
                "PATCH",
                f"/repos/{repo}/issues/comments/{existing['id']}",
                what=f"comment {existing['id']} in {repo}",
                json={"body": body},
            ).json()
            return {"comment": comment, "created": False}
        except ServiceError as exc:
            # Deleted between finding and editing it: post it anew.
            if exc.status != 404:
                raise
    return {"comment": _create_comment(gh, repo, number, body), "created": True}


LABELS = Param("labels", "list", label="Labels", required=True, description="label names")


def _label_names(payload: dict, capability: str) -> list[str]:
    labels = [str(label) for label in payload["labels"]]
    if not labels:
        raise CapabilityError(f"{capability} needs at least one label.")
    return labels


@offer(
    "github.labels.add",
    service="github",
    title="GitHub: add labels",
    description="Add labels to a pull request or issue (missing labels are created by GitHub).",
    params=(REPO, NUMBER, LABELS),
    result="list of the labels now on the pull request or issue",
    writes=True,
)
def labels_add(ctx: CapabilityContext, payload: dict) -> list:
    labels = _label_names(payload, "github.labels.add")
    with GitHub.for_context(ctx) as gh:
        repo, number = gh.check_repo(payload["repo"]), payload["number"]
        return gh.call(
            "POST",
            f"/repos/{repo}/issues/{number}/labels",
            repo=repo,
            what=f"pull request or issue {repo}#{number}",
            json={"labels": labels},
        ).json()


@offer(
    "github.labels.remove",
    service="github",
    title="GitHub: remove labels",
    description="Remove labels from a pull request or issue; labels it does not have are skipped.",
    params=(REPO, NUMBER, LABELS),
    result="list of the labels still on the pull request or issue",
    writes=True,
)
def labels_remove(ctx: CapabilityContext, payload: dict) -> list:
    labels = _label_names(payload, "github.labels.remove")
    with GitHub.for_context(ctx) as gh:
        repo, number = gh.check_repo(payload["repo"]), payload["number"]
        path = f"/repos/{repo}/issues/{number}/labels"
        what = f"pull request or issue {repo}#{number}"
        current = gh.call("GET", path, repo=repo, what=what).json()
        on_it = {label.get("name") for label in current}
        for label in labels:
            if label not in on_it:
                continue
            try:
                current = gh.request(
                    "DELETE", f"{path}/{quote(label, safe='')}", what=f"the label {label!r}"
                ).json()
            except ServiceError as exc:
                if exc.status != 404:  # 404: someone removed it meanwhile
                    raise
                current = [c for c in current if c.get("name") != label]
        return current


@offer(
    "github.issue.create",
    service="github",
    title="GitHub: open an issue",
    description="Open a new issue in a repository.",
    params=(
        REPO,
        Param("title", "string", label="Title", required=True),
        Param("body", "text", label="Body", description="Markdown text"),
        Param("labels", "list", label="Labels", description="label names"),
    ),
    result="GitHub's issue object",
    writes=True,
)
def issue_create(ctx: CapabilityContext, payload: dict) -> dict:
    issue = {k: payload[k] for k in ("title", "body", "labels") if k in payload}
    with GitHub.for_context(ctx) as gh:
        repo = gh.check_repo(payload["repo"])
        return gh.call(
            "POST", f"/repos/{repo}/issues", repo=repo, what=f"a new issue in {repo}", json=issue
        ).json()


@offer(
    "github.issue.reply",
    service="github",
    title="GitHub: reply to an issue",
    description="Post a reply on an issue or pull request conversation.",
    params=(REPO, NUMBER, BODY),
    result="GitHub's comment object",
    writes=True,
)
def issue_reply(ctx: CapabilityContext, payload: dict) -> dict:
    with GitHub.for_context(ctx) as gh:
        repo = gh.check_repo(payload["repo"])
        return _create_comment(gh, repo, payload["number"], payload["body"])


def test(config: dict, secrets: dict) -> str:
    """One cheap real call: who the token belongs to (for an App: the App, and a token for its
    configured installation)."""
    if github_app.is_app(config):
        return github_app.test(config, secrets, GitHub.api_url(config))
    with GitHub(config, secrets) as gh:
        user = gh.request("GET", "/user", what="the token's user").json()
    return f"Connected to GitHub as {user.get('login', 'an unnamed user')}."
