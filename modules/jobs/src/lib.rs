//! # magnet-jobs — research jobs, model lineage, API revenue (in progress)
#![deny(clippy::unwrap_used, clippy::disallowed_types)]

pub mod error;
pub mod params;
pub mod state;
