//! The embedded source: a randomuser.me-compatible API (`GET /api/`), deterministic by
//! seed and page, with fault injection for tests (`[source.faults]`).
//!
//! Served by `tributary source`. Query parameters as the real API: `results` (1..5000),
//! `seed`, `page`, `nat` (comma-separated nationalities), `inc` / `exc` (comma-separated
//! top-level fields to include / exclude).

pub mod config;
mod data;
pub mod generate;
mod national_id;
mod random;
pub mod server;
mod transliterate;

pub use config::{Config, Faults};
