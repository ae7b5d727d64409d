/* Helpers of the C test guests on top of the C SDK (sdk/c/flowbuilder.h): raw envelopes and
   packed results, so that the hostile guest can misbehave at the level of the ABI itself. */
#include "flowbuilder.h"

typedef fb_writer fb_buf;

FB_API uint64_t fb_pack(const char *ptr, size_t len) {
    return ((uint64_t)(uintptr_t)ptr << 32) | (uint64_t)len;
}

/* An output buffer with its room taken up front. */
FB_API fb_buf fb_buf_new(size_t room) {
    fb_buf buf = {fb_alloc(room), 0, room};
    if (buf.data == 0) __builtin_trap();
    return buf;
}

FB_API void fb_append(fb_buf *buf, const char *bytes, size_t len) { fb_w_bytes(buf, bytes, len); }
FB_API void fb_append_str(fb_buf *buf, const char *text) { fb_w_raw(buf, text); }
FB_API void fb_log_str(int32_t level, const char *text) { fb_log(level, text, fb_strlen(text)); }

/* Calls a capability; returns the packed JSON envelope {"ok": ...} or {"error": ...}. */
FB_API uint64_t fb_call_str(const char *name, const char *payload) {
    return fb_host_call(name, fb_strlen(name), payload, fb_strlen(payload));
}

FB_API int fb_contains(const char *haystack, size_t len, const char *needle) {
    size_t n = fb_strlen(needle);
    for (size_t i = 0; i + n <= len; i++) {
        size_t j = 0;
        while (j < n && haystack[i + j] == needle[j]) j++;
        if (j == n) return 1;
    }
    return 0;
}
