/* A well-behaved module: logs, calls kv.get, and returns its input and the call's result. */
#include "abi.h"

__asm__(".section .custom_section.flowbuilder.capabilities,\"\",@\n"
        ".ascii \"[\\\"kv.get\\\"]\"\n"
        ".text\n");

FB_EXPORT("run") uint64_t run(const char *input, size_t len) {
    fb_log_str(1, "echo: hello from C");
    uint64_t kv = fb_call_str("kv.get", "{\"key\": \"greeting\"}");
    size_t kv_len = (size_t)(uint32_t)kv;
    fb_buf out = fb_buf_new(len + kv_len + 64);
    fb_append_str(&out, "{\"ok\": {\"input\": ");
    fb_append(&out, input, len);
    fb_append_str(&out, ", \"kv\": ");
    fb_append(&out, (const char *)(uintptr_t)(kv >> 32), kv_len);
    fb_append_str(&out, "}}");
    return fb_pack(out.data, out.len);
}
