//! The deployer library: everything the `deployer` CLI does. Layers, each importing only the
//! ones below it (docs/architecture.md):
//!
//! `commands` (one file per verb) → `engine` (the release machinery) → `taskdef`, `image`,
//! `aws`, `state` → `config`, with `exit` (exit codes and the CLI's error type) at the bottom.

pub mod aws;
pub mod commands;
pub mod config;
pub mod engine;
pub mod exit;
pub mod image;
pub mod state;
pub mod taskdef;
