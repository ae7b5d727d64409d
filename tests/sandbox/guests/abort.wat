;; What an AssemblyScript module does when it fails: call env.abort(message, file, line, column)
;; with UTF-16 strings whose byte length sits in the 4 bytes before them.
(module
  (import "env" "abort" (func $abort (param i32 i32 i32 i32)))
  (memory (export "memory") 1)
  ;; "out of cheese" (26 bytes) at 20, "assembly/index.ts" (34 bytes) at 52.
  (data (i32.const 16) "\1a\00\00\00o\00u\00t\00 \00o\00f\00 \00c\00h\00e\00e\00s\00e\00")
  (data (i32.const 48) "\22\00\00\00a\00s\00s\00e\00m\00b\00l\00y\00/\00i\00n\00d\00e\00x\00.\00t\00s\00")
  (global $next (mut i32) (i32.const 1024))
  (func (export "alloc") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $size)))
    (local.get $ptr))
  (func (export "run") (param i32 i32) (result i64)
    (call $abort (i32.const 20) (i32.const 52) (i32.const 7) (i32.const 3))
    (unreachable)))
