//! Configuration loading: a profile's TOML over the defaults, as `tributary --config`
//! reads a file, into a configuration or an error that names the key or file at fault.
//!
//! What it checks is that loading returns: no panic, and no runaway memory or time
//! (libFuzzer's 2 GB and per-input limits) — a log filter once compiled for over 2 GB
//! (README, Security). What loads is printed as `config show` prints it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tributary::config::{Config, Redacted};

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    if let Ok(config) = Config::load_text(text) {
        let _ = Redacted(&config).to_string();
    }
});
