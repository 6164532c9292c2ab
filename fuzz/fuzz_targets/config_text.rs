//! Configuration loading: a profile's TOML over the defaults, as `tributary --config`
//! reads a file, into a configuration or an error that names the key or file at fault.
//!
//! Beyond "no panic": a configuration that loads passes its own validation, and
//! `config show` can print it; a refusal always says something.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tributary::config::{Config, Redacted};

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    match Config::load_text(text) {
        Ok(config) => {
            assert!(
                config.validate().is_ok(),
                "a loaded configuration fails validation"
            );
            let _ = Redacted(&config).to_string();
        }
        Err(e) => assert!(!e.to_string().is_empty(), "a refusal that says nothing"),
    }
});
