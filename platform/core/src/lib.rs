//! Domain types of the platform: workflows, stages, tasks and the workflow state machine.
//!
//! This crate does no I/O: it knows nothing of Redis or Postgres.

pub mod envelope;
pub mod state;

pub use envelope::{
    ENVELOPE_SCHEMA_VERSION, RESULT_SCHEMA_VERSION, TaskEnvelope, TaskOutcome, TaskResult,
};
pub use state::{Stage, TransitionError, WorkflowState, WorkflowType};

/// The version every process reports (health, agent registration, `--version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
