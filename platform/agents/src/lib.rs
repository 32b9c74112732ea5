//! The five agent kinds: scaffold, validation, e2e, integration, deployment.
