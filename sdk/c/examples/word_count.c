/* Counts the words of event.text, keeps a running total in the flow's key-value store and
   returns the text in capitals: {"words": 5, "total": 12, "shout": "HELLO ..."}. */
#include "flowbuilder.h"

FB_CAPABILITIES(["kv.get", "kv.set"])

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static int count_words(fb_json event, fb_ctx *ctx, fb_writer *out) {
    fb_str text = fb_string(fb_get(event, "text"));
    if (!text.ptr) return fb_fail(out, "the event has no \"text\" string", 0);

    int64_t words = 0;
    for (size_t i = 0; i < text.len; i++)
        if (!is_space(text.ptr[i]) && (i == 0 || is_space(text.ptr[i - 1]))) words++;
    fb_writer line = {0, 0, 0};
    fb_w_raw(&line, "counted ");
    fb_w_int(&line, words);
    fb_w_raw(&line, " words");
    fb_log(FB_INFO, line.data, line.len);

    const char *key = "{\"key\": \"words_total\"}";
    fb_result before = fb_call("kv.get", key, fb_strlen(key));
    if (!before.ok) return fb_fail_call(out, before);
    int64_t total = fb_int(before.value, 0) + words;

    fb_writer payload = {0, 0, 0};
    fb_w_raw(&payload, "{\"key\": \"words_total\", \"value\": ");
    fb_w_int(&payload, total);
    fb_w_raw(&payload, "}");
    fb_result saved = fb_call_w("kv.set", &payload);
    if (!saved.ok) return fb_fail_call(out, saved);

    char *shout = fb_alloc(text.len + 1);
    for (size_t i = 0; i < text.len; i++) {
        char c = text.ptr[i];
        shout[i] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
    }
    fb_w_raw(out, "{\"words\": ");
    fb_w_int(out, words);
    fb_w_raw(out, ", \"total\": ");
    fb_w_int(out, total);
    fb_w_raw(out, ", \"shout\": ");
    fb_w_string(out, shout, text.len);
    fb_w_raw(out, "}");
    (void)ctx;
    return FB_OK;
}

FB_STEP(count_words)
