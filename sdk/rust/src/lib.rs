//! Flowbuilder steps in Rust.
//!
//! A step is a function from the run's event to the step's output, both JSON:
//!
//! ```ignore
//! use flowbuilder::{json, Ctx, StepError, Value};
//!
//! fn greet(event: Value, ctx: &mut Ctx) -> Result<Value, StepError> {
//!     let name = event["name"].as_str().unwrap_or("world");
//!     ctx.log(format!("greeting {name}"));
//!     let title = ctx.call("kv.get", json!({"key": "title"}))?;
//!     Ok(json!({"greeting": format!("Hello, {name}!"), "title": title["value"]}))
//! }
//!
//! flowbuilder::step!(greet, capabilities = ["kv.get"]);
//! ```
//!
//! `step!` writes the module's exports (`alloc`, `run`) and its capability declaration, as
//! docs/wasm-abi.md describes; build with `cargo build --release --target wasm32-unknown-unknown`
//! and upload the `.wasm` file.

use std::fmt;

pub use serde_json::{self, json, Map, Value};

/// Why a step failed: the message users read in the run, and whether retrying may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    pub message: String,
    pub retryable: bool,
}

impl StepError {
    /// A failure that retrying will not fix (bad input, a missing setting, ...).
    pub fn new(message: impl Into<String>) -> Self {
        StepError { message: message.into(), retryable: false }
    }

    /// A failure that may pass on another attempt (a service that timed out, ...).
    pub fn retryable(message: impl Into<String>) -> Self {
        StepError { message: message.into(), retryable: true }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<&str> for StepError {
    fn from(message: &str) -> Self {
        StepError::new(message)
    }
}

impl From<String> for StepError {
    fn from(message: String) -> Self {
        StepError::new(message)
    }
}

impl From<CallError> for StepError {
    /// A failed capability call fails the step with its message; a retryable call, a retryable
    /// step.
    fn from(error: CallError) -> Self {
        StepError { message: error.message, retryable: error.retryable }
    }
}

impl From<serde_json::Error> for StepError {
    fn from(error: serde_json::Error) -> Self {
        StepError::new(error.to_string())
    }
}

/// A capability call that failed: not granted, a bad payload, or the service's own error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// The capability called, such as `github.pr.files`.
    pub capability: String,
    /// What went wrong, as the host tells it (`capability 'x' not granted`, `GitHub answered
    /// 503: ...`).
    pub message: String,
    /// Whether trying again later may help.
    pub retryable: bool,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CallError {}
impl std::error::Error for StepError {}

/// Log levels, as the run's log shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warning = 2,
    Error = 3,
}

/// What a step can reach besides its event: the flow's settings, earlier steps' outputs, the
/// run's identity, the log and the capabilities the step was granted.
pub struct Ctx {
    settings: Value,
    steps: Value,
    run: Value,
}

impl Ctx {
    /// The flow's settings (a JSON object).
    pub fn settings(&self) -> &Value {
        &self.settings
    }

    /// The outputs of the steps that ran before this one, by step id (a JSON object).
    pub fn steps(&self) -> &Value {
        &self.steps
    }

    /// `{"flow_id": ..., "run_id": ..., "step": ...}`.
    pub fn run(&self) -> &Value {
        &self.run
    }

    /// This step's id.
    pub fn step(&self) -> &str {
        self.run["step"].as_str().unwrap_or("")
    }

    /// A line in the run's log at level info.
    pub fn log(&mut self, message: impl AsRef<str>) {
        self.write(Level::Info, message.as_ref());
    }

    pub fn debug(&mut self, message: impl AsRef<str>) {
        self.write(Level::Debug, message.as_ref());
    }

    pub fn warn(&mut self, message: impl AsRef<str>) {
        self.write(Level::Warning, message.as_ref());
    }

    pub fn error(&mut self, message: impl AsRef<str>) {
        self.write(Level::Error, message.as_ref());
    }

    /// A line in the run's log at the given level.
    pub fn write(&mut self, level: Level, message: &str) {
        abi::log(level as i32, message);
    }

    /// Calls a capability the step was granted with a JSON object; returns its JSON result.
    pub fn call(&mut self, capability: &str, payload: Value) -> Result<Value, CallError> {
        let reply = abi::call(capability, &payload.to_string());
        let failed = |message: String, retryable: bool| CallError {
            capability: capability.to_string(),
            message,
            retryable,
        };
        let mut envelope: Value = match serde_json::from_slice(reply) {
            Ok(value) => value,
            Err(err) => {
                return Err(failed(format!("capability '{capability}': unreadable answer: {err}"), false))
            }
        };
        if let Some(ok) = envelope.get_mut("ok") {
            return Ok(ok.take());
        }
        let message = envelope["error"].as_str().unwrap_or("the call failed").to_string();
        Err(failed(message, envelope["retryable"] == Value::Bool(true)))
    }
}

/// The module's side of the ABI. Not part of the API: `step!` uses it.
#[doc(hidden)]
pub mod abi {
    use super::{Ctx, StepError, Value};
    use std::alloc::{alloc as allocate, Layout};

    #[cfg(target_arch = "wasm32")]
    #[link(wasm_import_module = "flowbuilder")]
    extern "C" {
        #[link_name = "log"]
        fn host_log(level: i32, ptr: *const u8, len: usize);
        #[link_name = "call"]
        fn host_call(name: *const u8, name_len: usize, payload: *const u8, payload_len: usize) -> u64;
    }

    // Off WebAssembly (cargo test, cargo doc) there is no host: logs go to stderr, calls fail.
    #[cfg(not(target_arch = "wasm32"))]
    unsafe fn host_log(level: i32, ptr: *const u8, len: usize) {
        let text = std::slice::from_raw_parts(ptr, len);
        eprintln!("[{level}] {}", String::from_utf8_lossy(text));
    }

    #[cfg(not(target_arch = "wasm32"))]
    unsafe fn host_call(_: *const u8, _: usize, _: *const u8, _: usize) -> u64 {
        let reply: &'static [u8] = br#"{"error": "no Flowbuilder host outside WebAssembly"}"#;
        pack(reply)
    }

    pub fn log(level: i32, message: &str) {
        unsafe { host_log(level, message.as_ptr(), message.len()) }
    }

    pub fn call(name: &str, payload: &str) -> &'static [u8] {
        let packed = unsafe { host_call(name.as_ptr(), name.len(), payload.as_ptr(), payload.len()) };
        unsafe { bytes_at(packed) }
    }

    /// `len` writable bytes for the host (null when memory is exhausted). Every run gets a fresh
    /// instance, so nothing is ever freed.
    pub fn alloc(len: usize) -> *mut u8 {
        match Layout::from_size_align(len.max(1), 8) {
            Ok(layout) => unsafe { allocate(layout) },
            Err(_) => std::ptr::null_mut(),
        }
    }

    fn pack(bytes: &'static [u8]) -> u64 {
        ((bytes.as_ptr() as usize as u64) << 32) | bytes.len() as u64
    }

    unsafe fn bytes_at(packed: u64) -> &'static [u8] {
        let ptr = (packed >> 32) as usize as *const u8;
        let len = (packed & 0xffff_ffff) as usize;
        if ptr.is_null() {
            return &[];
        }
        std::slice::from_raw_parts(ptr, len)
    }

    fn reply(envelope: Value) -> u64 {
        let text = serde_json::to_vec(&envelope).unwrap_or_else(|err| {
            format!(r#"{{"error": "the output could not be written as JSON: {err}"}}"#).into_bytes()
        });
        pack(Vec::leak(text))
    }

    /// Reads the input, calls the step, writes its envelope (`{"ok": ...}` or `{"error": ...}`).
    pub fn run(
        ptr: *const u8,
        len: usize,
        step: fn(Value, &mut Ctx) -> Result<Value, StepError>,
    ) -> u64 {
        std::panic::set_hook(Box::new(|info| log(3, &info.to_string())));
        let input = unsafe { std::slice::from_raw_parts(ptr, len) };
        let mut input: Value = match serde_json::from_slice(input) {
            Ok(value) => value,
            Err(err) => {
                return reply(serde_json::json!({"error": format!("the step's input is not JSON: {err}")}))
            }
        };
        let context = &mut input["context"];
        let mut ctx = Ctx {
            settings: context["settings"].take(),
            steps: context["steps"].take(),
            run: context["run"].take(),
        };
        match step(input["event"].take(), &mut ctx) {
            Ok(output) => reply(serde_json::json!({ "ok": output })),
            Err(err) => reply(serde_json::json!({"error": err.message, "retryable": err.retryable})),
        }
    }

    /// A JSON list of names as a fixed-size byte array, for the capabilities custom section.
    pub const fn section<const N: usize>(text: &str) -> [u8; N] {
        let bytes = text.as_bytes();
        let mut out = [0u8; N];
        let mut i = 0;
        while i < N {
            out[i] = bytes[i];
            i += 1;
        }
        out
    }
}

/// Makes a function `fn(Value, &mut Ctx) -> Result<Value, StepError>` the module's step:
/// exports `alloc` and `run`, and declares the capabilities the step calls (the builder asks
/// the user to grant exactly these).
///
/// ```ignore
/// flowbuilder::step!(review);
/// flowbuilder::step!(review, capabilities = ["github.pr.files", "llm.chat"]);
/// ```
#[macro_export]
macro_rules! step {
    ($handler:path) => {
        $crate::step!($handler, capabilities = []);
    };
    ($handler:path, capabilities = [$($capability:literal),* $(,)?]) => {
        #[no_mangle]
        pub extern "C" fn alloc(len: usize) -> *mut u8 {
            $crate::abi::alloc(len)
        }

        #[no_mangle]
        pub extern "C" fn run(ptr: *const u8, len: usize) -> u64 {
            $crate::abi::run(ptr, len, $handler)
        }

        const _: () = {
            const DECLARED: &str = $crate::__capabilities_json!($($capability),*);
            #[used]
            #[link_section = "flowbuilder.capabilities"]
            static CAPABILITIES: [u8; DECLARED.len()] = $crate::abi::section(DECLARED);
        };
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __capabilities_json {
    () => {
        "[]"
    };
    ($first:literal $(, $rest:literal)*) => {
        concat!("[\"", $first, "\"" $(, ", \"", $rest, "\"")*, "]")
    };
}
