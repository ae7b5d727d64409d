/* A module that misbehaves in the way its event asks: {"attack": "<name>"}. */
#include "abi.h"

#define ATTACK(name) fb_contains(input, len, "\"attack\": \"" name "\"")

static uint64_t reply(const char *json) { return fb_pack(json, fb_strlen(json)); }

static uint64_t wrap_ok(uint64_t envelope) {
    size_t n = (size_t)(uint32_t)envelope;
    fb_buf out = fb_buf_new(n + 16);
    fb_append_str(&out, "{\"ok\": ");
    fb_append(&out, (const char *)(uintptr_t)(envelope >> 32), n);
    fb_append_str(&out, "}");
    return fb_pack(out.data, out.len);
}

FB_EXPORT("run") uint64_t run(const char *input, size_t len) {
    if (ATTACK("loop")) {
        for (volatile int spin = 0;; spin++) {
        }
    }
    if (ATTACK("memory")) {
        /* Grow until the host refuses, then abort like an out-of-memory allocator would. */
        while (__builtin_wasm_memory_grow(0, 16) != (size_t)-1) {
        }
        __builtin_trap();
    }
    if (ATTACK("logs")) {
        for (;;) fb_log_str(1, "all work and no play makes a dull module");
    }
    if (ATTACK("calls")) {
        for (;;) fb_call_str("kv.get", "{\"key\": \"storm\"}");
    }
    if (ATTACK("ungranted")) return wrap_ok(fb_call_str("github.pr.get", "{\"number\": 1}"));
    if (ATTACK("malformed")) return wrap_ok(fb_call_str("kv.get", "{not json"));
    if (ATTACK("not-object")) return wrap_ok(fb_call_str("kv.get", "[1, 2]"));
    if (ATTACK("bad-buffer")) fb_log(1, (const char *)0x7ffffff0, 4096);
    if (ATTACK("trap")) __builtin_trap();
    if (ATTACK("big-output")) {
        size_t size = 2 * 1024 * 1024;
        fb_buf out = fb_buf_new(size + 16);
        fb_append_str(&out, "{\"ok\": \"");
        while (out.len < size) fb_append_str(&out, "xxxxxxxxxxxxxxxx");
        fb_append_str(&out, "\"}");
        return fb_pack(out.data, out.len);
    }
    if (ATTACK("not-json")) return reply("this is not JSON");
    if (ATTACK("error")) return reply("{\"error\": \"no pull request in the event\", \"retryable\": true}");
    return reply("{\"ok\": \"no attack\"}");
}
