"""Answer a Telegram message with the LLM, remembering the conversation per chat.

The last `memory_turns` exchanges of each chat are kept in the flow's key-value store under
`chat:<chat id>` (expiring after `memory_days` without messages). /start greets, /reset forgets.
"""

KEY = "chat:{chat_id}"
GREETING = "Hello! Ask me anything. Send /reset to make me forget our conversation."
FORGOTTEN = "Done: I have forgotten our conversation."
TELEGRAM_LIMIT = 4096


def main(event, ctx):
    chat_id = event.get("chat_id")
    text = (event.get("text") or "").strip()
    if chat_id is None or not text:
        ctx.info("Skipped: the update holds no text message.")
        return {"skipped": "no text message"}
    settings = ctx.settings
    key = KEY.format(chat_id=chat_id)
    command = text.split()[0].split("@")[0].lower() if text.startswith("/") else ""

    if command == "/start":
        return send(ctx, chat_id, settings.get("greeting") or GREETING)
    if command == "/reset":
        ctx.call("kv.delete", {"key": key})
        ctx.info(f"Forgot the conversation of chat {chat_id}.")
        return send(ctx, chat_id, FORGOTTEN)

    turns = int(settings.get("memory_turns") or 10)
    history = ctx.call("kv.get", {"key": key}) or []
    messages = history[-2 * turns :] + [{"role": "user", "content": text}]
    payload = {"messages": messages, "system": settings.get("system_prompt") or ""}
    if settings.get("model"):
        payload["model"] = settings["model"]
    try:
        answer = ctx.call("llm.chat", payload)["content"].strip()
    except ctx.CapabilityError as exc:
        ctx.error(f"The model failed: {exc}")
        send(ctx, chat_id, "Sorry, I cannot answer right now. Please try again in a moment.")
        # Not a CapabilityError: a retried step would send the apology again.
        raise RuntimeError(f"The model failed: {exc}") from exc
    memory = (messages + [{"role": "assistant", "content": answer}])[-2 * turns :]
    days = int(settings.get("memory_days") or 7)
    ctx.call("kv.set", {"key": key, "value": memory, "ttl_seconds": days * 86400})
    ctx.info(f"Answered chat {chat_id} ({len(memory) // 2} turns remembered).")
    return send(ctx, chat_id, answer)


def send(ctx, chat_id, text):
    # Telegram refuses messages over 4,096 characters.
    text = text if len(text) <= TELEGRAM_LIMIT else text[: TELEGRAM_LIMIT - 1] + "…"
    sent = ctx.call("telegram.send", {"chat_id": chat_id, "text": text})
    return {"chat_id": chat_id, "reply": text, "message_id": (sent or {}).get("message_id")}
