/* Flowbuilder steps in C (freestanding: no libc needed). See docs/sdk/c.md.
 *
 *   #include "flowbuilder.h"
 *   FB_CAPABILITIES(["kv.get"])
 *
 *   static int greet(fb_json event, fb_ctx *ctx, fb_writer *out) {
 *       fb_str name = fb_string(fb_get(event, "name"));
 *       if (!name.ptr) return fb_fail(out, "the event has no name", 0);
 *       fb_info("greeting someone");
 *       fb_w_raw(out, "{\"greeting\": ");
 *       fb_w_string(out, name.ptr, name.len);
 *       fb_w_raw(out, "}");
 *       return FB_OK;
 *   }
 *   FB_STEP(greet)
 *
 * Build: zig cc --target=wasm32-freestanding -O2 -nostdlib -Wl,--no-entry -o step.wasm step.c
 * (or clang --target=wasm32 -nostdlib -Wl,--no-entry ...). Include this header in one .c file.
 */
#ifndef FLOWBUILDER_H
#define FLOWBUILDER_H

#include <stddef.h>
#include <stdint.h>

#define FB_IMPORT(name) __attribute__((import_module("flowbuilder"), import_name(name)))
#define FB_EXPORT(name) __attribute__((export_name(name)))
#define FB_API static inline __attribute__((unused))

FB_IMPORT("log") void fb_host_log(int32_t level, const char *message, size_t len);
FB_IMPORT("call") uint64_t fb_host_call(const char *name, size_t name_len, const char *payload,
                                        size_t payload_len);

/* The capabilities the step calls, as a JSON list: FB_CAPABILITIES(["kv.get", "llm.chat"]).
   The builder reads them at upload and asks for exactly these grants. */
#define FB_CAPABILITIES(...) FB__SECTION(#__VA_ARGS__)
#define FB__SECTION(text)                                                                        \
    __asm__(".section .custom_section.flowbuilder.capabilities,\"\",@\n.ascii " #text "\n.text\n");

enum { FB_DEBUG = 0, FB_INFO = 1, FB_WARNING = 2, FB_ERROR = 3 };
enum { FB_OK = 0, FB_FAILED = 1 };

/* ---- memory: a bump allocator (every run gets a fresh instance; nothing is freed) ---------- */

extern unsigned char __heap_base;
static uintptr_t fb__heap_top = 0;

FB_EXPORT("alloc") void *fb_alloc(size_t size) {
    if (fb__heap_top == 0) fb__heap_top = (uintptr_t)&__heap_base;
    uintptr_t ptr = (fb__heap_top + 7) & ~(uintptr_t)7;
    size_t pages = __builtin_wasm_memory_size(0);
    if (ptr + size > pages * 65536) {
        size_t more = (ptr + size - pages * 65536 + 65535) / 65536;
        if (__builtin_wasm_memory_grow(0, more) == (size_t)-1) return 0;
    }
    fb__heap_top = ptr + size;
    return (void *)ptr;
}

FB_API size_t fb_strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

FB_API void fb_copy(char *to, const char *from, size_t len) {
    for (size_t i = 0; i < len; i++) to[i] = from[i];
}

FB_API int fb_equal(const char *a, size_t a_len, const char *b, size_t b_len) {
    if (a_len != b_len) return 0;
    for (size_t i = 0; i < a_len; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

/* ---- the log ---------------------------------------------------------------------------------- */

FB_API void fb_log(int32_t level, const char *text, size_t len) { fb_host_log(level, text, len); }
FB_API void fb_debug(const char *text) { fb_log(FB_DEBUG, text, fb_strlen(text)); }
FB_API void fb_info(const char *text) { fb_log(FB_INFO, text, fb_strlen(text)); }
FB_API void fb_warn(const char *text) { fb_log(FB_WARNING, text, fb_strlen(text)); }
FB_API void fb_error(const char *text) { fb_log(FB_ERROR, text, fb_strlen(text)); }

/* ---- writing JSON ----------------------------------------------------------------------------- */

/* A growing output buffer. Out of memory ends the step like a failed allocation would. */
typedef struct {
    char *data;
    size_t len;
    size_t room;
} fb_writer;

FB_API void fb_w_bytes(fb_writer *w, const char *bytes, size_t len) {
    if (w->len + len > w->room) {
        size_t room = (w->room ? w->room * 2 : 256);
        while (room < w->len + len) room *= 2;
        char *data = fb_alloc(room);
        if (!data) __builtin_trap();
        fb_copy(data, w->data, w->len);
        w->data = data;
        w->room = room;
    }
    fb_copy(w->data + w->len, bytes, len);
    w->len += len;
}

/* JSON text written as it is: fb_w_raw(out, "{\"words\": "). */
FB_API void fb_w_raw(fb_writer *w, const char *json) { fb_w_bytes(w, json, fb_strlen(json)); }

/* A JSON string, quoted and escaped. */
FB_API void fb_w_string(fb_writer *w, const char *text, size_t len) {
    static const char hex[] = "0123456789abcdef";
    fb_w_bytes(w, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            fb_w_bytes(w, esc, 2);
        } else if (c == '\n') {
            fb_w_bytes(w, "\\n", 2);
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            fb_w_bytes(w, esc, 6);
        } else {
            fb_w_bytes(w, (const char *)&c, 1);
        }
    }
    fb_w_bytes(w, "\"", 1);
}

FB_API void fb_w_int(fb_writer *w, int64_t value) {
    char digits[24];
    size_t n = 0;
    uint64_t v = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    do {
        digits[sizeof digits - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (value < 0) digits[sizeof digits - 1 - n++] = '-';
    fb_w_bytes(w, digits + sizeof digits - n, n);
}

/* ---- reading JSON ----------------------------------------------------------------------------- */

/* A JSON value inside some text (not copied). ptr is 0 when the value is missing. */
typedef struct {
    const char *ptr;
    size_t len;
} fb_json;

/* A decoded string (UTF-8, not NUL-terminated). ptr is 0 when the value was not a string. */
typedef struct {
    const char *ptr;
    size_t len;
} fb_str;

FB_API size_t fb__space(const char *s, size_t i, size_t n) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

/* The end of the value starting at s[i] (0 when it is malformed). */
FB_API size_t fb__skip(const char *s, size_t i, size_t n) {
    if (i >= n) return 0;
    if (s[i] == '"') {
        for (i++; i < n; i++) {
            if (s[i] == '\\') i++;
            else if (s[i] == '"') return i + 1;
        }
        return 0;
    }
    if (s[i] == '{' || s[i] == '[') {
        int depth = 0;
        for (; i < n; i++) {
            if (s[i] == '"') {
                size_t end = fb__skip(s, i, n);
                if (!end) return 0;
                i = end - 1;
            } else if (s[i] == '{' || s[i] == '[') {
                depth++;
            } else if (s[i] == '}' || s[i] == ']') {
                if (--depth == 0) return i + 1;
            }
        }
        return 0;
    }
    while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\n' &&
           s[i] != '\r' && s[i] != '\t')
        i++;
    return i;
}

/* The type of a value: 'o'bject, 'a'rray, 's'tring, 'n'umber, 't'rue, 'f'alse, 'z' (null),
   or 0 when it is missing. */
FB_API char fb_type(fb_json v) {
    if (!v.ptr || !v.len) return 0;
    switch (v.ptr[0]) {
    case '{': return 'o';
    case '[': return 'a';
    case '"': return 's';
    case 't': return 't';
    case 'f': return 'f';
    case 'n': return 'z';
    default: return 'n';
    }
}

/* The member `key` of an object (missing when v is not an object or has no such key). */
FB_API fb_json fb_get(fb_json v, const char *key) {
    fb_json none = {0, 0};
    if (fb_type(v) != 'o') return none;
    const char *s = v.ptr;
    size_t n = v.len, i = fb__space(s, 1, n), key_len = fb_strlen(key);
    while (i < n && s[i] == '"') {
        size_t key_end = fb__skip(s, i, n);
        if (!key_end) return none;
        size_t colon = fb__space(s, key_end, n);
        if (colon >= n || s[colon] != ':') return none;
        size_t start = fb__space(s, colon + 1, n), end = fb__skip(s, start, n);
        if (!end) return none;
        if (fb_equal(s + i + 1, key_end - i - 2, key, key_len)) {
            fb_json found = {s + start, end - start};
            return found;
        }
        i = fb__space(s, end, n);
        if (i < n && s[i] == ',') i = fb__space(s, i + 1, n);
    }
    return none;
}

/* The index-th item of an array (missing when out of range). */
FB_API fb_json fb_at(fb_json v, size_t index) {
    fb_json none = {0, 0};
    if (fb_type(v) != 'a') return none;
    const char *s = v.ptr;
    size_t n = v.len, i = fb__space(s, 1, n);
    for (size_t k = 0; i < n && s[i] != ']'; k++) {
        size_t end = fb__skip(s, i, n);
        if (!end) return none;
        if (k == index) {
            fb_json found = {s + i, end - i};
            return found;
        }
        i = fb__space(s, end, n);
        if (i < n && s[i] == ',') i = fb__space(s, i + 1, n);
    }
    return none;
}

FB_API int fb__hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A string value, decoded into fresh memory (escapes resolved, \u as UTF-8). */
FB_API fb_str fb_string(fb_json v) {
    fb_str out = {0, 0};
    if (fb_type(v) != 's' || v.len < 2) return out;
    char *text = fb_alloc(v.len);
    if (!text) __builtin_trap();
    size_t n = 0;
    for (size_t i = 1; i + 1 < v.len; i++) {
        char c = v.ptr[i];
        if (c != '\\') {
            text[n++] = c;
            continue;
        }
        c = v.ptr[++i];
        if (c == 'u' && i + 4 < v.len) {
            uint32_t code = 0;
            for (int k = 1; k <= 4; k++) code = code * 16 + (uint32_t)fb__hex(v.ptr[i + k]);
            i += 4;
            /* A surrogate pair: \ud83d\ude00. */
            if (code >= 0xD800 && code < 0xDC00 && i + 6 < v.len && v.ptr[i + 1] == '\\') {
                uint32_t low = 0;
                for (int k = 3; k <= 6; k++) low = low * 16 + (uint32_t)fb__hex(v.ptr[i + k]);
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                i += 6;
            }
            if (code < 0x80) {
                text[n++] = (char)code;
            } else if (code < 0x800) {
                text[n++] = (char)(0xC0 | code >> 6);
                text[n++] = (char)(0x80 | (code & 63));
            } else if (code < 0x10000) {
                text[n++] = (char)(0xE0 | code >> 12);
                text[n++] = (char)(0x80 | (code >> 6 & 63));
                text[n++] = (char)(0x80 | (code & 63));
            } else {
                text[n++] = (char)(0xF0 | code >> 18);
                text[n++] = (char)(0x80 | (code >> 12 & 63));
                text[n++] = (char)(0x80 | (code >> 6 & 63));
                text[n++] = (char)(0x80 | (code & 63));
            }
            continue;
        }
        text[n++] = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c == 'b' ? '\b'
                  : c == 'f' ? '\f' : c;
    }
    out.ptr = text;
    out.len = n;
    return out;
}

/* A number's integer part (fallback when v is not a number). */
FB_API int64_t fb_int(fb_json v, int64_t fallback) {
    if (fb_type(v) != 'n') return fallback;
    size_t i = 0;
    int negative = v.ptr[0] == '-';
    if (negative) i++;
    int64_t value = 0;
    for (; i < v.len && v.ptr[i] >= '0' && v.ptr[i] <= '9'; i++) value = value * 10 + (v.ptr[i] - '0');
    return negative ? -value : value;
}

/* ---- capabilities ----------------------------------------------------------------------------- */

/* A capability's answer: ok (the result in `value`), or the error and whether to retry. */
typedef struct {
    int ok;
    fb_json value;
    fb_str error;
    int retryable;
} fb_result;

/* Calls a capability the step was granted with a JSON object (`payload`, as text). */
FB_API fb_result fb_call(const char *capability, const char *payload, size_t payload_len) {
    uint64_t packed = fb_host_call(capability, fb_strlen(capability), payload, payload_len);
    fb_json envelope = {(const char *)(uintptr_t)(packed >> 32), (size_t)(uint32_t)packed};
    fb_result result = {0, {0, 0}, {0, 0}, 0};
    result.value = fb_get(envelope, "ok");
    result.ok = result.value.ptr != 0;
    if (!result.ok) {
        result.error = fb_string(fb_get(envelope, "error"));
        result.retryable = fb_type(fb_get(envelope, "retryable")) == 't';
    }
    return result;
}

FB_API fb_result fb_call_w(const char *capability, const fb_writer *payload) {
    return fb_call(capability, payload->data, payload->len);
}

/* ---- the step --------------------------------------------------------------------------------- */

/* What a step reaches besides its event (JSON values inside the input). */
typedef struct {
    fb_json settings;
    fb_json steps;
    fb_json run;
} fb_ctx;

/* Ends the step with an error users read; retryable lets the engine's retry policy try again. */
FB_API int fb_fail(fb_writer *out, const char *message, int retryable) {
    out->len = 0;
    fb_w_raw(out, "{\"error\": ");
    fb_w_string(out, message, fb_strlen(message));
    fb_w_raw(out, retryable ? ", \"retryable\": true}" : ", \"retryable\": false}");
    return FB_FAILED;
}

/* The same with a failed call's own message and retryability. */
FB_API int fb_fail_call(fb_writer *out, fb_result failed) {
    out->len = 0;
    fb_w_raw(out, "{\"error\": ");
    fb_w_string(out, failed.error.ptr ? failed.error.ptr : "", failed.error.len);
    fb_w_raw(out, failed.retryable ? ", \"retryable\": true}" : ", \"retryable\": false}");
    return FB_FAILED;
}

typedef int (*fb_step_fn)(fb_json event, fb_ctx *ctx, fb_writer *out);

FB_API uint64_t fb__run(const char *input, size_t len, fb_step_fn step) {
    fb_json all = {input, len};
    fb_ctx ctx = {fb_get(fb_get(all, "context"), "settings"), fb_get(fb_get(all, "context"), "steps"),
                  fb_get(fb_get(all, "context"), "run")};
    fb_writer body = {0, 0, 0}, out = {0, 0, 0};
    if (step(fb_get(all, "event"), &ctx, &body) == FB_OK) {
        fb_w_raw(&out, "{\"ok\": ");
        if (body.len) fb_w_bytes(&out, body.data, body.len);
        else fb_w_raw(&out, "null");
        fb_w_raw(&out, "}");
    } else {
        out = body;
    }
    return ((uint64_t)(uintptr_t)out.data << 32) | (uint64_t)out.len;
}

/* Makes `fn` the module's step: int fn(fb_json event, fb_ctx *ctx, fb_writer *out) writes the
   step's output (one JSON value) to `out` and returns FB_OK, or returns fb_fail(...). */
#define FB_STEP(fn)                                                                              \
    FB_EXPORT("run") uint64_t fb_run(const char *input, size_t len) { return fb__run(input, len, fn); }

#endif
