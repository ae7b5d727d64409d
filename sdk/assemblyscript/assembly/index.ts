// Flowbuilder steps in AssemblyScript. See docs/sdk/assemblyscript.md.
//
//   import { Ctx, Json, Output, step } from "../assembly/index";
//   export { alloc } from "../assembly/index";
//
//   function greet(event: Json, ctx: Ctx): Output {
//     const name = event.get("name");
//     if (!name.isString) return Output.fail("the event has no name");
//     ctx.log("greeting " + name.str);
//     const title = ctx.call("kv.get", Json.object().set("key", Json.string("title")));
//     if (!title.ok) return Output.failed(title);
//     return Output.ok(Json.object().set("greeting", Json.string("Hello, " + name.str + "!")));
//   }
//
//   export function run(ptr: usize, len: i32): u64 {
//     return step(ptr, len, greet);
//   }
//
// Build with `asc step.ts --outFile step.wasm --optimize --runtime stub`, then declare the
// capabilities it calls: `python manage.py sandbox declare step.wasm kv.get`.

@external("flowbuilder", "log")
declare function hostLog(level: i32, ptr: usize, len: usize): void;
@external("flowbuilder", "call")
declare function hostCall(name: usize, nameLen: usize, payload: usize, payloadLen: usize): u64;

/** `len` writable bytes for the host; every run gets a fresh instance, so nothing is freed. */
export function alloc(len: i32): usize {
  return heap.alloc(<usize>len);
}

// ---- JSON ---------------------------------------------------------------------------------------

export enum Kind {
  Null,
  Bool,
  Number,
  String,
  Array,
  Object,
}

/** A JSON value: build with Json.object().set(...), Json.string(...), ...; read with get/at. */
export class Json {
  kind: Kind = Kind.Null;
  bool: bool = false;
  num: f64 = 0;
  str: string = "";
  items: Array<Json> = [];
  keys: Array<string> = [];
  values: Map<string, Json> = new Map<string, Json>();

  static null(): Json {
    return new Json();
  }

  static boolean(value: bool): Json {
    const v = new Json();
    v.kind = Kind.Bool;
    v.bool = value;
    return v;
  }

  static number(value: f64): Json {
    const v = new Json();
    v.kind = Kind.Number;
    v.num = value;
    return v;
  }

  static string(value: string): Json {
    const v = new Json();
    v.kind = Kind.String;
    v.str = value;
    return v;
  }

  static array(): Json {
    const v = new Json();
    v.kind = Kind.Array;
    return v;
  }

  static object(): Json {
    const v = new Json();
    v.kind = Kind.Object;
    return v;
  }

  get isNull(): bool {
    return this.kind == Kind.Null;
  }
  get isString(): bool {
    return this.kind == Kind.String;
  }
  get isNumber(): bool {
    return this.kind == Kind.Number;
  }

  /** The member `key` of an object (null when missing, or when this is not an object). */
  get(key: string): Json {
    if (this.kind != Kind.Object || !this.values.has(key)) return Json.null();
    return this.values.get(key);
  }

  /** The index-th item of an array (null when out of range). */
  at(index: i32): Json {
    if (this.kind != Kind.Array || index < 0 || index >= this.items.length) return Json.null();
    return this.items[index];
  }

  /** Sets an object's member; returns the object, to chain. */
  set(key: string, value: Json): Json {
    if (!this.values.has(key)) this.keys.push(key);
    this.values.set(key, value);
    return this;
  }

  /** Appends to an array; returns the array, to chain. */
  push(value: Json): Json {
    this.items.push(value);
    return this;
  }

  toString(): string {
    switch (this.kind) {
      case Kind.Bool:
        return this.bool ? "true" : "false";
      case Kind.Number: {
        const n = this.num;
        if (!isFinite(n)) return "null";
        if (Math.floor(n) == n && Math.abs(n) < 9007199254740992) return (<i64>n).toString();
        return n.toString();
      }
      case Kind.String:
        return quote(this.str);
      case Kind.Array: {
        const parts = new Array<string>();
        for (let i = 0; i < this.items.length; i++) parts.push(this.items[i].toString());
        return "[" + parts.join(",") + "]";
      }
      case Kind.Object: {
        const parts = new Array<string>();
        for (let i = 0; i < this.keys.length; i++) {
          const key = this.keys[i];
          parts.push(quote(key) + ":" + this.values.get(key).toString());
        }
        return "{" + parts.join(",") + "}";
      }
      default:
        return "null";
    }
  }

  /** Parses JSON text; null when it is not JSON. */
  static parse(text: string): Json | null {
    const parser = new Parser(text);
    const value = parser.value();
    if (value === null) return null;
    parser.space();
    return parser.at == text.length ? value : null;
  }
}

function quote(text: string): string {
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c == 0x22) out += '\\"';
    else if (c == 0x5c) out += "\\\\";
    else if (c == 0x0a) out += "\\n";
    else if (c < 0x20) out += "\\u00" + (c < 0x10 ? "0" : "") + c.toString(16);
    else out += String.fromCharCode(c);
  }
  return out + '"';
}

class Parser {
  at: i32 = 0;
  constructor(public text: string) {}

  space(): void {
    while (this.at < this.text.length) {
      const c = this.text.charCodeAt(this.at);
      if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) break;
      this.at++;
    }
  }

  literal(word: string): bool {
    if (this.text.substr(this.at, word.length) != word) return false;
    this.at += word.length;
    return true;
  }

  value(): Json | null {
    this.space();
    if (this.at >= this.text.length) return null;
    const c = this.text.charCodeAt(this.at);
    if (c == 0x7b) return this.object();
    if (c == 0x5b) return this.array();
    if (c == 0x22) {
      const s = this.string();
      return s === null ? null : Json.string(s);
    }
    if (this.literal("true")) return Json.boolean(true);
    if (this.literal("false")) return Json.boolean(false);
    if (this.literal("null")) return Json.null();
    return this.number();
  }

  number(): Json | null {
    const start = this.at;
    while (this.at < this.text.length) {
      const c = this.text.charCodeAt(this.at);
      const numeric = (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x2b || c == 0x2e || c == 0x65 || c == 0x45;
      if (!numeric) break;
      this.at++;
    }
    if (this.at == start) return null;
    return Json.number(parseFloat(this.text.substring(start, this.at)));
  }

  string(): string | null {
    this.at++;
    let out = "";
    let from = this.at;
    while (this.at < this.text.length) {
      const c = this.text.charCodeAt(this.at);
      if (c == 0x22) {
        out += this.text.substring(from, this.at);
        this.at++;
        return out;
      }
      if (c != 0x5c) {
        this.at++;
        continue;
      }
      out += this.text.substring(from, this.at);
      const e = this.text.charCodeAt(this.at + 1);
      this.at += 2;
      if (e == 0x6e) out += "\n";
      else if (e == 0x74) out += "\t";
      else if (e == 0x72) out += "\r";
      else if (e == 0x62) out += "\b";
      else if (e == 0x66) out += "\f";
      else if (e == 0x75) {
        out += String.fromCharCode(<i32>parseInt(this.text.substr(this.at, 4), 16));
        this.at += 4;
      } else out += String.fromCharCode(e);
      from = this.at;
    }
    return null;
  }

  array(): Json | null {
    this.at++;
    const out = Json.array();
    this.space();
    if (this.text.charCodeAt(this.at) == 0x5d) {
      this.at++;
      return out;
    }
    while (true) {
      const item = this.value();
      if (item === null) return null;
      out.push(item);
      this.space();
      const c = this.text.charCodeAt(this.at++);
      if (c == 0x5d) return out;
      if (c != 0x2c) return null;
    }
  }

  object(): Json | null {
    this.at++;
    const out = Json.object();
    this.space();
    if (this.text.charCodeAt(this.at) == 0x7d) {
      this.at++;
      return out;
    }
    while (true) {
      this.space();
      if (this.text.charCodeAt(this.at) != 0x22) return null;
      const key = this.string();
      if (key === null) return null;
      this.space();
      if (this.text.charCodeAt(this.at++) != 0x3a) return null;
      const item = this.value();
      if (item === null) return null;
      out.set(key, item);
      this.space();
      const c = this.text.charCodeAt(this.at++);
      if (c == 0x7d) return out;
      if (c != 0x2c) return null;
    }
  }
}

// ---- the host -----------------------------------------------------------------------------------

function utf8(text: string): ArrayBuffer {
  return String.UTF8.encode(text);
}

function pack(buffer: ArrayBuffer): u64 {
  return (u64(changetype<usize>(buffer)) << 32) | u64(buffer.byteLength);
}

/** A capability's answer: `ok` and its `value`, or the `error` and whether it is `retryable`. */
export class CallResult {
  ok: bool = false;
  value: Json = Json.null();
  error: string = "";
  retryable: bool = false;
}

/** What a step reaches besides its event. */
export class Ctx {
  constructor(
    /** The flow's settings (an object). */
    public settings: Json,
    /** The outputs of the steps that ran before this one, by step id. */
    public steps: Json,
    /** {"flow_id", "run_id", "step"} */
    public run: Json,
  ) {}

  /** A line in the run's log at level info. */
  log(message: string): void {
    this.write(1, message);
  }
  debug(message: string): void {
    this.write(0, message);
  }
  warn(message: string): void {
    this.write(2, message);
  }
  error(message: string): void {
    this.write(3, message);
  }

  write(level: i32, message: string): void {
    const bytes = utf8(message);
    hostLog(level, changetype<usize>(bytes), bytes.byteLength);
  }

  /** Calls a capability the step was granted with a JSON object. */
  call(capability: string, payload: Json): CallResult {
    const name = utf8(capability);
    const body = utf8(payload.toString());
    const packed = hostCall(
      changetype<usize>(name),
      name.byteLength,
      changetype<usize>(body),
      body.byteLength,
    );
    const text = String.UTF8.decodeUnsafe(<usize>(packed >> 32), <usize>(packed & 0xffffffff));
    const result = new CallResult();
    const envelope = Json.parse(text);
    if (envelope === null) {
      result.error = "capability '" + capability + "': the host's answer is not JSON";
      return result;
    }
    if (envelope.values.has("ok")) {
      result.ok = true;
      result.value = envelope.get("ok");
    } else {
      result.error = envelope.get("error").str;
      const retryable = envelope.get("retryable");
      result.retryable = retryable.kind == Kind.Bool && retryable.bool;
    }
    return result;
  }
}

/** What a step returns: Output.ok(value), or Output.fail(message, retryable). */
export class Output {
  ok: bool = true;
  value: Json = Json.null();
  error: string = "";
  retryable: bool = false;

  static ok(value: Json): Output {
    const out = new Output();
    out.value = value;
    return out;
  }

  static fail(message: string, retryable: bool = false): Output {
    const out = new Output();
    out.ok = false;
    out.error = message;
    out.retryable = retryable;
    return out;
  }

  /** Fails with a failed call's message, retryable when the call was. */
  static failed(call: CallResult): Output {
    return Output.fail(call.error, call.retryable);
  }
}

/** Runs `handler` on the input at ptr/len and returns its envelope, as `run` must. */
export function step(ptr: usize, len: i32, handler: (event: Json, ctx: Ctx) => Output): u64 {
  const input = Json.parse(String.UTF8.decodeUnsafe(ptr, <usize>len));
  if (input === null) {
    return pack(utf8('{"error": "the step\'s input is not JSON"}'));
  }
  const context = input.get("context");
  const ctx = new Ctx(context.get("settings"), context.get("steps"), context.get("run"));
  const output = handler(input.get("event"), ctx);
  const envelope = Json.object();
  if (output.ok) envelope.set("ok", output.value);
  else envelope.set("error", Json.string(output.error)).set("retryable", Json.boolean(output.retryable));
  return pack(utf8(envelope.toString()));
}
