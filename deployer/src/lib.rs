//! The deployer library: everything the `deployer` CLI does, reusable by the platform's
//! deployment agent. Organised by what users do: config, render, diff, verify, build, push,
//! release, rollback, history.

pub mod aws;
/// Task-definition templates (handlebars), from `deployer-taskdef`.
pub use deployer_taskdef::render;
pub mod config;
pub mod diff;
pub mod exit;
pub mod image;
pub mod taskdef;
pub mod vars;
pub mod verify;

// release / rollback (issue 5)
pub mod audit;
pub mod ecs_deploy;
pub mod history;
pub mod lock;
pub mod release;
pub mod rollback;
pub mod smoke;
pub mod status;
