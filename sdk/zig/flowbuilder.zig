//! Flowbuilder steps in Zig. See docs/sdk/zig.md.
//!
//!     const std = @import("std");
//!     const fb = @import("flowbuilder.zig");
//!
//!     const Greeting = struct { greeting: []const u8, title: fb.Value };
//!
//!     fn greet(event: fb.Value, ctx: *fb.Ctx) !Greeting {
//!         const name = fb.string(event, "name") orelse return ctx.fail("the event has no name", .{}, false);
//!         ctx.log("greeting {s}", .{name});
//!         const title = try ctx.call("kv.get", .{ .key = "title" });
//!         return .{ .greeting = try ctx.print("Hello, {s}!", .{name}), .title = title };
//!     }
//!
//!     comptime {
//!         fb.exportStep(greet);
//!         asm (fb.capabilities(&.{"kv.get"}));
//!     }
//!
//! Build: zig build-exe step.zig -target wasm32-freestanding -fno-entry -rdynamic -O ReleaseSmall
const std = @import("std");

pub const Value = std.json.Value;

/// Every run gets a fresh instance: memory is never given back.
pub const allocator = std.heap.wasm_allocator;

const host_log = @extern(*const fn (level: i32, ptr: [*]const u8, len: usize) callconv(.c) void, .{
    .name = "log",
    .library_name = "flowbuilder",
});
const host_call = @extern(*const fn (name: [*]const u8, name_len: usize, payload: [*]const u8, payload_len: usize) callconv(.c) u64, .{
    .name = "call",
    .library_name = "flowbuilder",
});

pub const Level = enum(i32) { debug = 0, info = 1, warning = 2, err = 3 };

/// Why the step failed: the message users read, and whether retrying may help.
pub const Failure = struct { message: []const u8, retryable: bool };

/// `CallFailed` and `StepFailed` carry their message in `ctx.failure`.
pub const Error = error{ CallFailed, StepFailed, OutOfMemory };

/// What a step reaches besides its event.
pub const Ctx = struct {
    /// The flow's settings (an object).
    settings: Value,
    /// The outputs of the steps that ran before this one, by step id (an object).
    steps: Value,
    /// {"flow_id": ..., "run_id": ..., "step": ...}
    run: Value,
    /// Set by a failed call() or by fail(): what the step ends with if it returns the error.
    failure: ?Failure = null,

    /// A line in the run's log at level info, formatted like std.fmt.
    pub fn log(self: *Ctx, comptime format: []const u8, args: anytype) void {
        self.write(.info, format, args);
    }

    pub fn write(_: *Ctx, level: Level, comptime format: []const u8, args: anytype) void {
        const line = std.fmt.allocPrint(allocator, format, args) catch return;
        host_log(@intFromEnum(level), line.ptr, line.len);
    }

    /// Text formatted like std.fmt, in memory that lives for the run.
    pub fn print(_: *Ctx, comptime format: []const u8, args: anytype) Error![]u8 {
        return std.fmt.allocPrint(allocator, format, args);
    }

    /// Calls a capability the step was granted; the payload is any value std.json can write
    /// (`.{ .key = "title" }`). A failure returns error.CallFailed, with ctx.failure saying why.
    pub fn call(self: *Ctx, capability: []const u8, payload: anytype) Error!Value {
        const text = try std.json.Stringify.valueAlloc(allocator, payload, .{});
        const answer = unpack(host_call(capability.ptr, capability.len, text.ptr, text.len));
        const envelope = std.json.parseFromSliceLeaky(Value, allocator, answer, .{}) catch {
            return self.failWith(.{ .message = "the host's answer is not JSON", .retryable = false }, error.CallFailed);
        };
        if (envelope == .object) {
            if (envelope.object.get("ok")) |ok| return ok;
            const message = string(envelope, "error") orelse "the call failed";
            const retryable = if (envelope.object.get("retryable")) |r| r == .bool and r.bool else false;
            return self.failWith(.{ .message = message, .retryable = retryable }, error.CallFailed);
        }
        return self.failWith(.{ .message = "the host's answer is not an object", .retryable = false }, error.CallFailed);
    }

    /// Ends the step with a message: `return ctx.fail("no {s} in the event", .{"text"}, false);`
    pub fn fail(self: *Ctx, comptime format: []const u8, args: anytype, retryable: bool) Error {
        const message = std.fmt.allocPrint(allocator, format, args) catch "the step failed";
        return self.failWith(.{ .message = message, .retryable = retryable }, error.StepFailed);
    }

    fn failWith(self: *Ctx, failure: Failure, err: Error) Error {
        self.failure = failure;
        return err;
    }
};

/// The member `key` of an object value, if it is a string.
pub fn string(value: Value, key: []const u8) ?[]const u8 {
    if (value != .object) return null;
    const member = value.object.get(key) orelse return null;
    return if (member == .string) member.string else null;
}

/// The member `key` of an object value, if it is a whole number.
pub fn integer(value: Value, key: []const u8) ?i64 {
    if (value != .object) return null;
    const member = value.object.get(key) orelse return null;
    return if (member == .integer) member.integer else null;
}

/// The member `key` of an object value (null when missing).
pub fn get(value: Value, key: []const u8) Value {
    if (value != .object) return .null;
    return value.object.get(key) orelse .null;
}

fn pack(bytes: []const u8) u64 {
    return (@as(u64, @intFromPtr(bytes.ptr)) << 32) | bytes.len;
}

fn unpack(value: u64) []const u8 {
    if (value >> 32 == 0) return "";
    const ptr: [*]const u8 = @ptrFromInt(@as(usize, @intCast(value >> 32)));
    return ptr[0..@as(usize, @intCast(value & 0xffffffff))];
}

fn reply(envelope: anytype) u64 {
    const out = std.json.Stringify.valueAlloc(allocator, envelope, .{}) catch
        return pack("{\"error\": \"out of memory writing the output\"}");
    return pack(out);
}

fn alloc(len: usize) callconv(.c) ?[*]u8 {
    const buffer = allocator.alloc(u8, len) catch return null;
    return buffer.ptr;
}

/// Runs `handler` on the input at ptr/len and writes its envelope.
pub fn runStep(comptime handler: anytype, input: []const u8) u64 {
    const parsed = std.json.parseFromSliceLeaky(Value, allocator, input, .{}) catch
        return reply(.{ .@"error" = "the step's input is not JSON" });
    const context = get(parsed, "context");
    var ctx = Ctx{ .settings = get(context, "settings"), .steps = get(context, "steps"), .run = get(context, "run") };
    const output = handler(get(parsed, "event"), &ctx) catch |err| {
        if (ctx.failure) |failure| {
            if (err == error.CallFailed or err == error.StepFailed)
                return reply(.{ .@"error" = failure.message, .retryable = failure.retryable });
        }
        const message = std.fmt.allocPrint(allocator, "the step failed: error.{s}", .{@errorName(err)}) catch "the step failed";
        return reply(.{ .@"error" = message, .retryable = false });
    };
    return reply(.{ .ok = output });
}

/// Exports the module's `alloc` and `run` with `handler` as the step:
/// `fn (event: Value, ctx: *Ctx) !T`, where T is anything std.json can write.
pub fn exportStep(comptime handler: anytype) void {
    const Exports = struct {
        fn run(ptr: [*]const u8, len: usize) callconv(.c) u64 {
            return runStep(handler, ptr[0..len]);
        }
    };
    @export(&Exports.run, .{ .name = "run" });
    @export(&alloc, .{ .name = "alloc" });
}

/// The assembly of the module's capability declaration, for a container-level
/// `comptime { asm (fb.capabilities(&.{ "kv.get", "kv.set" })); }`.
pub fn capabilities(comptime names: []const []const u8) []const u8 {
    comptime var list: []const u8 = "";
    inline for (names, 0..) |name, index| {
        list = list ++ (if (index > 0) ", " else "") ++ "\\\"" ++ name ++ "\\\"";
    }
    return ".section .custom_section.flowbuilder.capabilities,\"\",@\n.ascii \"[" ++ list ++ "]\"\n.text\n";
}
