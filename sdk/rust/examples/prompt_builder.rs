//! The Code Review Bot's prompt builder, in Rust: fetches a pull request's changed files, skips
//! the ignored ones (lock files, generated and vendored code, deletions, binaries), numbers each
//! patch with the new file's line numbers, cuts it into parts that fit the model's context and
//! writes one review prompt per part.
//!
//! It follows `plan_files` of flow_templates/code-review-bot/plan.py line for line, so the two
//! give the same output for the same pull request (the tests compare them).
//!
//! Event: a GitHub `pull_request` event (`{"payload": {"repository": ..., "pull_request": ...}}`).
//! Settings: `context_size` (tokens, default 8192), `max_files` (50), `max_issues` (3),
//! `ignore_globs` (a list, or a comma-separated string).
//! Output: `{"repo", "number", "part_chars", "skipped": [[path, why]], "items": [{"path",
//! "status", "previous", "additions", "deletions", "truncated", "parts": [{"prompt", "lines"}]}]}`.
use flowbuilder::{json, Ctx, StepError, Value};

const CHARS_PER_TOKEN: i64 = 3;
const PROMPT_TOKENS: i64 = 500;
const ANSWER_TOKENS: i64 = 700;
const MIN_PART_CHARS: i64 = 1500;
const MAX_PARTS_PER_FILE: usize = 5;
const MAX_LINE_CHARS: usize = 400;
const MAX_PROMPT_CHARS: usize = 6_000_000;

const DEFAULT_IGNORE: &[&str] = &[
    "*.lock",
    "package-lock.json",
    "pnpm-lock.yaml",
    "go.sum",
    "*.min.js",
    "*.min.css",
    "*.map",
    "*.snap",
    "*.svg",
    "*_pb2.py",
    "*.pb.go",
    "*.generated.*",
    "vendor/*",
    "third_party/*",
    "node_modules/*",
    "dist/*",
];

fn build_prompts(event: Value, ctx: &mut Ctx) -> Result<Value, StepError> {
    let payload = &event["payload"];
    let repo = payload["repository"]["full_name"]
        .as_str()
        .ok_or_else(|| StepError::new("the event is not a pull request event (no repository)"))?
        .to_string();
    let number = payload["pull_request"]["number"].clone();
    if !number.is_u64() {
        return Err(StepError::new("the event is not a pull request event (no number)"));
    }
    let settings = ctx.settings().clone();
    let context = int_setting(&settings, "context_size", 8192);
    let part_chars = MIN_PART_CHARS.max((context - PROMPT_TOKENS - ANSWER_TOKENS) * CHARS_PER_TOKEN);

    let files = ctx.call("github.pr.files", json!({"repo": repo, "number": number}))?;
    let files = files.as_array().cloned().unwrap_or_default();
    let (skipped, items) = plan_files(&files, &settings, part_chars as usize);
    let prompts: usize = items.iter().map(|item| item["parts"].as_array().map_or(0, Vec::len)).sum();
    ctx.log(format!(
        "{} files to review in {prompts} prompts; {} skipped",
        items.len(),
        skipped.len()
    ));
    Ok(json!({
        "repo": repo,
        "number": number,
        "part_chars": part_chars,
        "skipped": skipped,
        "items": items,
    }))
}

flowbuilder::step!(build_prompts, capabilities = ["github.pr.files"]);

// ---- settings ---------------------------------------------------------------------------------

fn int_setting(settings: &Value, name: &str, default: i64) -> i64 {
    let value = match &settings[name] {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.trunc() as i64)),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        Value::Bool(b) => Some(*b as i64),
        _ => None,
    };
    match value {
        Some(v) if v > 0 => v,
        _ => default,
    }
}

fn list_setting(settings: &Value, name: &str, default: &[&str]) -> Vec<String> {
    let strip = |items: Vec<String>| -> Vec<String> {
        items.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
    };
    match &settings[name] {
        Value::String(s) => strip(s.split(|c| c == ',' || c == '\n').map(String::from).collect()),
        Value::Array(values) => strip(
            values
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                .collect(),
        ),
        _ => default.iter().map(|s| s.to_string()).collect(),
    }
}

// ---- files and patches ------------------------------------------------------------------------

fn text<'a>(f: &'a Value, key: &str) -> &'a str {
    f[key].as_str().unwrap_or("")
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn get_or(f: &Value, key: &str, default: Value) -> Value {
    f.get(key).cloned().unwrap_or(default)
}

fn plan_files(files: &[Value], settings: &Value, part_chars: usize) -> (Vec<Value>, Vec<Value>) {
    let max_files = int_setting(settings, "max_files", 50) as usize;
    let max_issues = int_setting(settings, "max_issues", 3);
    let patterns = list_setting(settings, "ignore_globs", DEFAULT_IGNORE);
    let (mut skipped, mut items, mut prompt_chars) = (Vec::new(), Vec::new(), 0usize);
    for f in files {
        let path = text(f, "filename");
        let status = f.get("status").and_then(Value::as_str).unwrap_or("modified");
        if let Some(pattern) = ignored_by(path, &patterns) {
            skipped.push(json!([path, format!("ignored by the pattern `{pattern}`")]));
        } else if status == "removed" {
            skipped.push(json!([path, "deleted"]));
        } else if !truthy(&f["patch"]) {
            let why = if status == "renamed" && !truthy(&f["changes"]) {
                let previous = f.get("previous_filename").and_then(Value::as_str).unwrap_or("?");
                format!("renamed from `{previous}` without changes")
            } else {
                "binary, or too large for GitHub to show a diff".to_string()
            };
            skipped.push(json!([path, why]));
        } else if items.len() >= max_files {
            skipped.push(json!([path, format!("over the limit of {max_files} files")]));
        } else {
            let (item, size) = plan_file(f, part_chars, max_issues);
            if prompt_chars + size > MAX_PROMPT_CHARS {
                skipped.push(json!([path, "not reached: the change is larger than one review takes"]));
                continue;
            }
            prompt_chars += size;
            items.push(item);
        }
    }
    (skipped, items)
}

/// The file's review item, and the characters of its prompts.
fn plan_file(f: &Value, part_chars: usize, max_issues: i64) -> (Value, usize) {
    let (parts, cut) = split_patch(text(f, "patch"), part_chars);
    let kept = &parts[..parts.len().min(MAX_PARTS_PER_FILE)];
    let truncated = if kept.len() < parts.len() {
        let reviewed: usize = kept.iter().map(|p| changed_lines(p)).sum();
        let total: usize = parts.iter().map(|p| changed_lines(p)).sum();
        format!(
            "reviewed the first {reviewed} of {total} changed lines \
             ({MAX_PARTS_PER_FILE} parts of the model's context)"
        )
    } else if cut > 0 {
        format!("{cut} very long lines were shortened to {MAX_LINE_CHARS} characters")
    } else {
        String::new()
    };
    let mut size = 0;
    let mut out_parts = Vec::new();
    for (index, part) in kept.iter().enumerate() {
        let prompt = file_prompt(f, part, index + 1, kept.len(), max_issues);
        size += prompt.chars().count();
        out_parts.push(json!({"prompt": prompt, "lines": lines_shown(part)}));
    }
    let item = json!({
        "path": f["filename"],
        "status": get_or(f, "status", json!("modified")),
        "previous": get_or(f, "previous_filename", json!("")),
        "additions": get_or(f, "additions", json!(0)),
        "deletions": get_or(f, "deletions", json!(0)),
        "truncated": truncated,
        "parts": out_parts,
    });
    (item, size)
}

fn file_prompt(f: &Value, part: &str, index: usize, count: usize, max_issues: i64) -> String {
    let filename = text(f, "filename");
    let mut what = if truthy(&f["previous_filename"]) {
        format!("`{filename}` (renamed from `{}`)", text(f, "previous_filename"))
    } else {
        let status = f.get("status").and_then(Value::as_str).unwrap_or("modified");
        format!("`{filename}` ({status})")
    };
    if count > 1 {
        what += &format!(", part {index} of {count}");
    }
    format!(
        "Review the changes to {what}.\n\
         Answer with one JSON object and nothing else:\n\
         {{\"issues\": [{{\"line\": <new line number or null>, \"severity\": \"high\" | \"medium\" | \
         \"low\", \"message\": \"<one sentence>\"}}], \"summary\": \"<one or two sentences on what \
         changed>\"}}\n\
         List at most {max_issues} potential issues (bugs, security, data loss, \
         performance, missing tests), most severe first; an empty list when there are none.\n\
         Each line below shows the new file's line number, then + (added), - (removed) or a \
         space (unchanged context).\n\n\
         {part}"
    )
}

/// The first pattern that matches: with a '/', against the whole path; else the file name.
fn ignored_by<'a>(path: &str, patterns: &'a [String]) -> Option<&'a str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    patterns.iter().map(String::as_str).find(|pattern| {
        let bare = pattern.strip_prefix("**/").unwrap_or(pattern);
        if bare.contains('/') {
            fnmatch(path, bare) || fnmatch(path, &format!("*/{bare}"))
        } else {
            fnmatch(name, bare)
        }
    })
}

/// Python's str.splitlines().
fn splitlines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let end = match c {
            '\r' => {
                if let Some(&(_, '\n')) = chars.peek() {
                    chars.next();
                    at + 2
                } else {
                    at + 1
                }
            }
            '\n' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}' | '\u{2029}' => {
                at + c.len_utf8()
            }
            _ => continue,
        };
        lines.push(&text[start..at]);
        start = end;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// The new file's first line number from a hunk header `@@ -a,b +c,d @@`.
fn hunk_start(line: &str) -> Option<u64> {
    fn digits(s: &str) -> usize {
        s.bytes().take_while(u8::is_ascii_digit).count()
    }
    fn count(s: &str) -> Option<&str> {
        // \d+(?:,\d+)?
        let n = digits(s);
        if n == 0 {
            return None;
        }
        let rest = &s[n..];
        match rest.strip_prefix(',') {
            Some(after) if digits(after) > 0 => Some(&after[digits(after)..]),
            _ => Some(rest),
        }
    }
    let rest = count(line.strip_prefix("@@ -")?)?;
    let rest = rest.strip_prefix(" +")?;
    let start: u64 = rest[..digits(rest)].parse().ok()?;
    count(rest)?.strip_prefix(" @@").map(|_| start)
}

/// The patch's hunks as lines prefixed by the new file's line numbers, and the number of lines
/// shortened to MAX_LINE_CHARS.
fn number_patch(patch: &str) -> (Vec<Vec<String>>, usize) {
    let (mut hunks, mut cut): (Vec<Vec<String>>, usize) = (Vec::new(), 0);
    let mut new_line = 0u64;
    for raw in splitlines(patch) {
        if let Some(start) = hunk_start(raw) {
            new_line = start;
            hunks.push(vec![raw.to_string()]);
            continue;
        }
        let current = match hunks.last_mut() {
            Some(current) => current,
            None => continue,
        };
        let mut raw = raw.to_string();
        if raw.chars().count() > MAX_LINE_CHARS {
            raw = raw.chars().take(MAX_LINE_CHARS).collect::<String>() + " …[line cut]";
            cut += 1;
        }
        let sign = raw.chars().next();
        let text = sign.map_or("", |c| &raw[c.len_utf8()..]);
        match sign {
            Some('-') => current.push(format!("{:>5} -{text}", "")),
            Some(c @ ('+' | ' ')) => {
                current.push(format!("{new_line:>5} {c}{text}"));
                new_line += 1;
            }
            _ => current.push(raw.clone()),
        }
    }
    (hunks, cut)
}

fn width(line: &str) -> usize {
    line.chars().count() + 1
}

/// Cuts a numbered patch into parts of at most part_chars, at hunk boundaries when possible.
fn split_patch(patch: &str, part_chars: usize) -> (Vec<String>, usize) {
    let (hunks, cut) = number_patch(patch);
    let pieces: Vec<Vec<String>> = hunks.into_iter().flat_map(|h| split_hunk(h, part_chars)).collect();
    let (mut parts, mut current, mut size): (Vec<String>, Vec<String>, usize) = (Vec::new(), Vec::new(), 0);
    for piece in pieces {
        let piece_size: usize = piece.iter().map(|line| width(line)).sum();
        if !current.is_empty() && size + piece_size > part_chars {
            parts.push(current.join("\n"));
            current.clear();
            size = 0;
        }
        current.extend(piece);
        size += piece_size;
    }
    if !current.is_empty() {
        parts.push(current.join("\n"));
    }
    (parts, cut)
}

fn split_hunk(hunk: Vec<String>, part_chars: usize) -> Vec<Vec<String>> {
    let mut lines = hunk.into_iter();
    let header = lines.next().unwrap_or_default();
    let mut size = width(&header);
    let (mut pieces, mut current) = (Vec::new(), vec![header.clone()]);
    for line in lines {
        if current.len() > 1 && size + width(&line) > part_chars {
            pieces.push(std::mem::take(&mut current));
            current.push(format!("{header} (continued)"));
            size = width(&current[0]);
        }
        size += width(&line);
        current.push(line);
    }
    pieces.push(current);
    pieces
}

/// The new file's line numbers a part shows, in order.
fn lines_shown(part: &str) -> Vec<u64> {
    let mut lines: Vec<u64> = splitlines(part)
        .into_iter()
        .filter_map(|line| {
            let head: String = line.chars().take(5).collect();
            let head = head.trim();
            if !head.is_empty() && head.chars().all(|c| c.is_ascii_digit()) {
                head.parse().ok()
            } else {
                None
            }
        })
        .collect();
    lines.sort_unstable();
    lines.dedup();
    lines
}

fn changed_lines(text: &str) -> usize {
    splitlines(text)
        .into_iter()
        .filter(|line| matches!(line.chars().nth(6), Some('+' | '-')))
        .count()
}

// ---- Python's fnmatch -------------------------------------------------------------------------

enum Token {
    Any,
    One,
    Char(char),
    Set { negated: bool, items: Vec<(char, char)> },
}

fn tokens(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => {
                if !matches!(out.last(), Some(Token::Any)) {
                    out.push(Token::Any);
                }
            }
            '?' => out.push(Token::One),
            '[' => {
                let mut j = i;
                if j < chars.len() && chars[j] == '!' {
                    j += 1;
                }
                if j < chars.len() && chars[j] == ']' {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push(Token::Char('['));
                    continue;
                }
                let mut body = &chars[i..j];
                i = j + 1;
                let negated = body.first() == Some(&'!');
                if negated {
                    body = &body[1..];
                }
                let mut items = Vec::new();
                let mut k = 0;
                while k < body.len() {
                    if k + 2 < body.len() && body[k + 1] == '-' {
                        if body[k] <= body[k + 2] {
                            items.push((body[k], body[k + 2]));
                        }
                        k += 3;
                    } else {
                        items.push((body[k], body[k]));
                        k += 1;
                    }
                }
                out.push(Token::Set { negated, items });
            }
            c => out.push(Token::Char(c)),
        }
    }
    out
}

fn matches_at(tokens: &[Token], text: &[char]) -> bool {
    match tokens.first() {
        None => text.is_empty(),
        Some(Token::Any) => (0..=text.len()).any(|skip| matches_at(&tokens[1..], &text[skip..])),
        Some(token) => match text.first() {
            None => false,
            Some(&c) => {
                let ok = match token {
                    Token::One => true,
                    Token::Char(expected) => c == *expected,
                    Token::Set { negated, items } => {
                        items.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
                    }
                    Token::Any => unreachable!(),
                };
                ok && matches_at(&tokens[1..], &text[1..])
            }
        },
    }
}

fn fnmatch(name: &str, pattern: &str) -> bool {
    let text: Vec<char> = name.chars().collect();
    matches_at(&tokens(pattern), &text)
}
