//! A Zig module for the Flowbuilder ABI: greets the event's "name" and asks kv.get for a title.
const std = @import("std");

comptime {
    asm (
        \\.section .custom_section.flowbuilder.capabilities,"",@
        \\.ascii "[\"kv.get\"]"
        \\.text
    );
}

extern "flowbuilder" fn log(level: i32, ptr: [*]const u8, len: usize) void;
extern "flowbuilder" fn call(name: [*]const u8, name_len: usize, payload: [*]const u8, payload_len: usize) u64;

const allocator = std.heap.wasm_allocator;

export fn alloc(len: usize) ?[*]u8 {
    const buffer = allocator.alloc(u8, len) catch return null;
    return buffer.ptr;
}

fn pack(bytes: []const u8) u64 {
    return (@as(u64, @intFromPtr(bytes.ptr)) << 32) | bytes.len;
}

fn unpack(value: u64) []const u8 {
    const ptr: [*]const u8 = @ptrFromInt(@as(usize, @intCast(value >> 32)));
    return ptr[0..@as(usize, @intCast(value & 0xffffffff))];
}

fn fail(message: []const u8) u64 {
    const out = std.fmt.allocPrint(allocator, "{{\"error\": \"{s}\"}}", .{message}) catch return 0;
    return pack(out);
}

const Input = struct {
    event: struct { name: ?[]const u8 = null },
};

export fn run(ptr: [*]const u8, len: usize) u64 {
    const parsed = std.json.parseFromSlice(Input, allocator, ptr[0..len], .{
        .ignore_unknown_fields = true,
    }) catch return fail("the event is not what greet expects");
    const name = parsed.value.event.name orelse return fail("the event has no name");

    const line = "greet: looking up a title";
    log(1, line.ptr, line.len);
    const kv = "kv.get";
    const payload = "{\"key\": \"title\"}";
    const title = unpack(call(kv.ptr, kv.len, payload.ptr, payload.len));

    const out = std.fmt.allocPrint(
        allocator,
        "{{\"ok\": {{\"greeting\": \"Hello, {s}!\", \"title\": {s}}}}}",
        .{ name, title },
    ) catch return fail("out of memory");
    return pack(out);
}
