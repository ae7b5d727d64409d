//! Counts the words of event.text, keeps a running total in the flow's key-value store and
//! returns the text in capitals: {"words": 5, "total": 12, "shout": "HELLO ..."}.
const std = @import("std");
const fb = @import("flowbuilder");

const total_key = "words_total";

const Count = struct { words: i64, total: i64, shout: []const u8 };

fn countWords(event: fb.Value, ctx: *fb.Ctx) fb.Error!Count {
    const text = fb.string(event, "text") orelse
        return ctx.fail("the event has no \"text\" string", .{}, false);
    var words: i64 = 0;
    var it = std.mem.tokenizeAny(u8, text, " \t\n\r\x0b\x0c");
    while (it.next()) |_| words += 1;
    ctx.log("counted {d} words", .{words});

    const before = try ctx.call("kv.get", .{ .key = total_key });
    const total = (if (before == .integer) before.integer else 0) + words;
    _ = try ctx.call("kv.set", .{ .key = total_key, .value = total });

    const shout = try fb.allocator.alloc(u8, text.len);
    for (text, 0..) |c, i| shout[i] = std.ascii.toUpper(c);
    return .{ .words = words, .total = total, .shout = shout };
}

comptime {
    fb.exportStep(countWords);
    asm (fb.capabilities(&.{ "kv.get", "kv.set" }));
}
