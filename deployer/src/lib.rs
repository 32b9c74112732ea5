//! The deployer library: everything the `deployer` CLI does, reusable by the platform's
//! deployment agent. Organised by what users do: config, render, diff, verify, build, push,
//! release, rollback, history.

pub mod config;
pub mod render;
pub mod taskdef;

// release / rollback (issue 5)
pub mod audit;
pub mod ecs_deploy;
pub mod history;
pub mod lock;
pub mod smoke;
