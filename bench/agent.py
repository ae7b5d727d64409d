"""What the Repository Assistant costs on a sample issue, with the fake model (docs/agents.md).

A throwaway SQLite database, the fake GitHub and fake OpenAI-compatible server of the tests, the
template deployed as a user would, and one real webhook delivery of a new issue. The model
searches the code, reads a file and lists the pull requests (two of them at once), then answers.
Prints the agent's model turns, tool calls, tokens and times as JSON.

    .venv/bin/python bench/agent.py [--runs 5] [--latency 0.0]

`--latency` makes each fake model answer take that many seconds (a real model's time dominates).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ.setdefault("FLOWS_EXECUTOR", "inline")
os.environ.setdefault("FLOWS_ALLOW_PRIVATE_HOSTS", "1")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    connection.creation.create_test_db(verbosity=0)
    from django.contrib.auth import get_user_model
    from django.test import Client

    from flows.compiler import deploy
    from flows.models import StepRun
    from gallery.registry import load_templates, use_template
    from tests.fakes.github import FakeGitHub, sign
    from tests.fakes.llm import FakeLLM
    from tests.templates.support import REPO, connect, payload
    from tests.templates.test_template_repository_assistant import investigation

    load_templates()
    user = get_user_model().objects.create_user("bench")
    results = []
    with FakeGitHub() as github, FakeLLM(models=["llama3.1"]) as llm:
        settings.FLOWS_GITHUB_API_URL = github.url
        llm.latency = args.latency
        github.add_repo(REPO)
        github.add_file(
            REPO,
            "flowbuilder/settings.py",
            "CONCURRENCY = env_int('FLOWS_WORKER_CONCURRENCY', 4)\n" * 40,
        )
        github.add_file(REPO, "README.md", "# Flowbuilder\n" * 40)
        for number in range(1, 9):
            github.add_pull(REPO, number, title=f"Change {number}")
        gh = connect(user, "github", "GitHub", {}, {"token": github.token})
        model = connect(user, "llm", "Model", {"base_url": llm.base_url, "model": "llama3.1"}, {})
        flow = use_template("repository-assistant", user)
        document = flow.document
        document["settings"]["github_repo"]["value"] = REPO
        document["connections"]["github"]["connection"] = gh.pk
        document["connections"]["llm"]["connection"] = model.pk
        flow.document = document
        flow.save()
        deploy(flow, user)
        flow.refresh_from_db()
        client = Client()
        for index in range(args.runs):
            event = payload("issues.opened")
            event["repository"]["full_name"] = REPO
            event["issue"].update(
                number=100 + index,
                title="How many workers can I run?",
                body="I have a 4-core machine. How many runs at once, and how do I change it?",
            )
            llm.replies += investigation()
            raw = json.dumps(event).encode()
            started = time.perf_counter()
            answer = client.post(
                f"/hooks/github/{flow.webhook_token}/",
                data=raw,
                content_type="application/json",
                HTTP_X_GITHUB_EVENT="issues",
                HTTP_X_GITHUB_DELIVERY=f"bench-{index}",
                HTTP_X_HUB_SIGNATURE_256=sign(flow.webhook_secret, raw),
            ).json()
            wall = (time.perf_counter() - started) * 1000
            step = StepRun.objects.get(run_id=answer["run"], step_id="answer")
            model_ms = sum(e["duration_ms"] for e in step.trace if e["kind"] == "model")
            tool_ms = sum(e["duration_ms"] for e in step.trace if e["kind"] == "tool")
            results.append(
                {
                    "turns": step.output["turns"],
                    "tool_calls": step.output["tool_calls"],
                    "tokens": step.output["tokens"],
                    "agent_ms": step.duration_ms,
                    "model_ms": model_ms,
                    "tool_ms": tool_ms,
                    "webhook_to_comment_ms": wall,
                }
            )
    median = {
        key: statistics.median(r[key] for r in results)
        for key in ("agent_ms", "model_ms", "tool_ms", "webhook_to_comment_ms")
    }
    print(
        json.dumps(
            {
                "runs": args.runs,
                "latency_s": args.latency,
                "first": results[0],
                "median_ms": median,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
