"""Fake outside services for tests: small real HTTP servers on 127.0.0.1 that speak each API.

`github.FakeGitHub`, `llm.FakeLLM`, `slack.FakeSlack`, `discord.FakeDiscord`,
`telegram.FakeTelegram` and `web.FakeWebsite`, all built on `base.FakeServer` (routes, a request
log, canned failures). Real GitHub webhook payloads are in `payloads/`
(`github.load_payload`, signed with `github.sign`). See docs/integrations.md.
"""
