// Counts the words of event.text, keeps a running total in the flow's key-value store and
// returns the text in capitals: {"words": 5, "total": 12, "shout": "HELLO ..."}.
import { Ctx, Json, Output, step } from "../assembly/index";
export { alloc } from "../assembly/index";

const TOTAL_KEY = "words_total";

function isSpace(c: i32): bool {
  return c == 0x20 || (c >= 0x09 && c <= 0x0d);
}

function countWords(event: Json, ctx: Ctx): Output {
  const text = event.get("text");
  if (!text.isString) return Output.fail('the event has no "text" string');
  let words = 0;
  let shout = "";
  for (let i = 0; i < text.str.length; i++) {
    const c = text.str.charCodeAt(i);
    if (!isSpace(c) && (i == 0 || isSpace(text.str.charCodeAt(i - 1)))) words++;
    shout += String.fromCharCode(c >= 0x61 && c <= 0x7a ? c - 32 : c);
  }
  ctx.log("counted " + words.toString() + " words");

  const before = ctx.call("kv.get", Json.object().set("key", Json.string(TOTAL_KEY)));
  if (!before.ok) return Output.failed(before);
  const total = (before.value.isNumber ? before.value.num : 0) + words;
  const saved = ctx.call(
    "kv.set",
    Json.object().set("key", Json.string(TOTAL_KEY)).set("value", Json.number(total)),
  );
  if (!saved.ok) return Output.failed(saved);

  return Output.ok(
    Json.object()
      .set("words", Json.number(words))
      .set("total", Json.number(total))
      .set("shout", Json.string(shout)),
  );
}

export function run(ptr: usize, len: i32): u64 {
  return step(ptr, len, countWords);
}
