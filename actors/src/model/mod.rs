//! Data that crosses actors: the source's records, as received and as validated.

pub mod raw_user;

pub use raw_user::{RawUser, Rejected, SourcePage};
