//! Counts the words of `event.text`, keeps a running total in the flow's key-value store and
//! returns the text in capitals: {"words": 5, "total": 12, "shout": "HELLO ..."}.
use flowbuilder::{json, Ctx, StepError, Value};

const TOTAL_KEY: &str = "words_total";

fn count_words(event: Value, ctx: &mut Ctx) -> Result<Value, StepError> {
    let text = event["text"]
        .as_str()
        .ok_or_else(|| StepError::new("the event has no \"text\" string"))?;
    let words = text.split_ascii_whitespace().count() as u64;
    ctx.log(format!("counted {words} words"));

    let before = ctx.call("kv.get", json!({ "key": TOTAL_KEY }))?;
    let total = before.as_u64().unwrap_or(0) + words;
    ctx.call("kv.set", json!({ "key": TOTAL_KEY, "value": total }))?;

    Ok(json!({
        "words": words,
        "total": total,
        "shout": text.to_ascii_uppercase(),
    }))
}

flowbuilder::step!(count_words, capabilities = ["kv.get", "kv.set"]);
