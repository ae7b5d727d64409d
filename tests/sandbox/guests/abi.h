/* The Flowbuilder core ABI for freestanding C guests (see docs/wasm-abi.md). */
#include <stddef.h>
#include <stdint.h>

#define FB_IMPORT(name) __attribute__((import_module("flowbuilder"), import_name(name)))
#define FB_EXPORT(name) __attribute__((export_name(name)))

FB_IMPORT("log") void fb_log(int32_t level, const char *message, size_t len);
FB_IMPORT("call") uint64_t fb_call(const char *name, size_t name_len, const char *payload,
                                   size_t payload_len);

/* A bump allocator: every run gets a fresh instance, so nothing needs freeing. */
extern unsigned char __heap_base;
static uintptr_t heap_top = 0;

FB_EXPORT("alloc") void *alloc(size_t size) {
    if (heap_top == 0) heap_top = (uintptr_t)&__heap_base;
    uintptr_t ptr = (heap_top + 7) & ~(uintptr_t)7;
    size_t pages = __builtin_wasm_memory_size(0);
    if (ptr + size > pages * 65536) {
        size_t more = (ptr + size - pages * 65536 + 65535) / 65536;
        if (__builtin_wasm_memory_grow(0, more) == (size_t)-1) return 0;
    }
    heap_top = ptr + size;
    return (void *)ptr;
}

static size_t fb_strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

static uint64_t fb_pack(const char *ptr, size_t len) {
    return ((uint64_t)(uintptr_t)ptr << 32) | (uint64_t)len;
}

/* An output buffer assembled from pieces, with its room taken up front. */
typedef struct {
    char *data;
    size_t len;
    size_t room;
} fb_buf;

static fb_buf fb_buf_new(size_t room) {
    fb_buf buf = {alloc(room), 0, room};
    return buf;
}

static void fb_append(fb_buf *buf, const char *bytes, size_t len) {
    if (buf->data == 0 || buf->len + len > buf->room) __builtin_trap();
    for (size_t i = 0; i < len; i++) buf->data[buf->len + i] = bytes[i];
    buf->len += len;
}

static void fb_append_str(fb_buf *buf, const char *text) { fb_append(buf, text, fb_strlen(text)); }

static void fb_log_str(int32_t level, const char *text) { fb_log(level, text, fb_strlen(text)); }

/* Calls a capability; returns the JSON envelope {"ok": ...} or {"error": ...}. */
static uint64_t fb_call_str(const char *name, const char *payload) {
    return fb_call(name, fb_strlen(name), payload, fb_strlen(payload));
}

static int fb_contains(const char *haystack, size_t len, const char *needle) {
    size_t n = fb_strlen(needle);
    for (size_t i = 0; i + n <= len; i++) {
        size_t j = 0;
        while (j < n && haystack[i + j] == needle[j]) j++;
        if (j == n) return 1;
    }
    return 0;
}
