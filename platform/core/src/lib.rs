//! Domain types of the platform: workflows, stages, tasks and the workflow state machine.
//!
//! This crate does no I/O: it knows nothing of Redis or Postgres.
