/* A module built against wasi-libc: printf goes to the step's log; there is no filesystem. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((export_name("alloc"))) void *alloc(size_t size) { return malloc(size); }

static char reply[512];

__attribute__((export_name("run"))) uint64_t run(const char *input, size_t len) {
    if (len >= 10 && memmem(input, len, "\"flood\"", 7)) {
        for (;;) printf("printing until the host says stop\n");
    }
    printf("hello from wasi-libc\n");
    fprintf(stderr, "a warning on stderr\n");
    FILE *passwd = fopen("/etc/passwd", "r");
    const char *env = getenv("HOME");
    snprintf(reply, sizeof reply,
             "{\"ok\": {\"passwd\": \"%s\", \"home\": %s}}",
             passwd ? "readable" : strerror(errno), env ? "\"set\"" : "null");
    return ((uint64_t)(uintptr_t)reply << 32) | strlen(reply);
}
