"""Gather what changed in a repository since the last digest, summarise it, and post it.

The items come from a JSON feed read with http.request: by default GitHub's list of issues and
pull requests of `github_repo` updated in the last `since_hours` hours. A private repository
needs a token: give the flow's http connection the secret `header:Authorization` = `Bearer <token>`
(the step never sees it). Any feed answering a JSON list of objects with a title and a URL works
too. The LLM writes a short digest; the next step posts it (to Slack, or to Discord with
`discord_text`).
"""

import datetime

DEFAULT_FEED = (
    "https://api.github.com/repos/{repo}/issues?state=all&sort=updated&direction=desc"
    "&per_page=100&since={since}"
)
MAX_ITEMS = 60
DISCORD_LIMIT = 2000


def main(event, ctx):
    settings = ctx.settings
    repo = str(settings.get("github_repo") or "").strip()
    hours = int(settings.get("since_hours") or 24)
    now = parse_time(event.get("scheduled_at")) or datetime.datetime.now(datetime.UTC)
    since = (now - datetime.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    url = str(settings.get("feed_url") or DEFAULT_FEED).format(repo=repo, since=since)

    response = ctx.call(
        "http.request",
        {"method": "GET", "url": url, "headers": {"Accept": "application/vnd.github+json"}},
    )
    if response.get("status") != 200 or not isinstance(response.get("json"), list):
        raise RuntimeError(
            f"The feed {url} answered HTTP {response.get('status')} without a JSON list: "
            f"{str(response.get('body'))[:300]}"
        )
    items = [describe(item) for item in response["json"][:MAX_ITEMS] if isinstance(item, dict)]
    items = [i for i in items if i and (not i["updated"] or i["updated"] >= since)]
    ctx.info(f"{len(items)} items updated since {since}.")
    title = f"Daily digest for {repo or url}, {now.strftime('%A %d %B %Y')}"
    if not items:
        intro = f"Nothing new in the last {hours} hours."
    else:
        intro = summarise(ctx, settings, items)
    slack = [f"*{title}*", intro] + [
        f"• {i['kind']} <{i['url']}|{i['title']}> ({i['state']}, by {i['author']})" for i in items
    ]
    discord = [f"**{title}**", intro] + [
        f"• {i['kind']} [{i['title']}](<{i['url']}>) ({i['state']}, by {i['author']})"
        for i in items
    ]
    return {
        "items": len(items),
        "since": since,
        # Slack and Discord link differently: the posting step picks its own.
        "slack_text": "\n".join(slack),
        "discord_text": cap("\n".join(discord), DISCORD_LIMIT),
    }


def cap(text, limit):
    """Discord refuses messages over 2,000 characters: cut at a line, say so."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 40].rsplit("\n", 1)[0]
    return f"{cut}\n… and more (the list was cut)."


def parse_time(value):
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def describe(item):
    title = item.get("title") or item.get("name")
    url = item.get("html_url") or item.get("url")
    if not (title and url):
        return None
    if "pull_request" in item:
        kind = "PR"
        merged = (item.get("pull_request") or {}).get("merged_at")
        state = "merged" if merged else item.get("state", "")
    else:
        kind = "Issue" if "number" in item else "Item"
        state = item.get("state", "")
    return {
        "kind": f"{kind} #{item['number']}" if "number" in item else kind,
        "title": str(title),
        "url": str(url),
        "state": state or "updated",
        "author": (item.get("user") or {}).get("login") or item.get("author") or "unknown",
        "updated": str(item.get("updated_at") or ""),
    }


def summarise(ctx, settings, items):
    listing = "\n".join(
        f"- {i['kind']} “{i['title']}” ({i['state']}, by {i['author']})" for i in items
    )
    language = settings.get("language") or "English"
    payload = {
        "messages": [
            {
                "role": "user",
                "content": f"These issues and pull requests changed in the last day:\n{listing}\n\n"
                f"Write a digest of at most 5 short sentences in {language} for the team's chat: "
                "what moved forward, what was merged or closed, what needs attention. Plain "
                "text, no heading, no list of links (they follow your text).",
            }
        ],
        "temperature": 0.3,
    }
    if settings.get("model"):
        payload["model"] = settings["model"]
    try:
        return ctx.call("llm.chat", payload)["content"].strip()
    except ctx.CapabilityError as exc:
        ctx.error(f"The model failed; posting the list without a summary: {exc}")
        return f"{len(items)} issues and pull requests changed (no summary: the model failed)."
