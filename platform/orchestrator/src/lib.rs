//! The orchestrator: REST API (axum) and the workflow driver.
