//! Postgres persistence for workflows, tasks, events and artifacts.
