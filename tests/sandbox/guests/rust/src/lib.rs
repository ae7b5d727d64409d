//! A module that misbehaves in the way its event asks: {"attack": "<name>"}.
use flowbuilder::{json, Ctx, StepError, Value};

fn attack(event: Value, ctx: &mut Ctx) -> Result<Value, StepError> {
    match event["attack"].as_str().unwrap_or("") {
        "loop" => {
            let spin = 0u64;
            loop {
                // A volatile read keeps the loop from being optimised away.
                unsafe { std::ptr::read_volatile(&spin) };
            }
        }
        "memory" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                unsafe { std::ptr::read_volatile(&hoard[hoard.len() - 1][0]) };
            }
        }
        "logs" => loop {
            ctx.log("all work and no play makes a dull module");
        },
        "calls" => loop {
            let _ = ctx.call("kv.get", json!({"key": "storm"}));
        },
        "trap" => panic!("the pull request has no files"),
        "big-output" => Ok(json!("x".repeat(2 * 1024 * 1024))),
        _ => Ok(json!("no attack")),
    }
}

flowbuilder::step!(attack);
