//! The deployer's integration tests, one test binary (the AWS SDK and the deployer library link
//! once): each module is what one `tests/*.rs` file was, and `support` is what they share.

mod cli;
mod harness;
mod json_errors;
mod notifications;
mod progressive;
mod release_bench;
mod release_fidelity;
mod release_flow;
mod release_plugin;
mod release_recovery;
mod smoke_target;
mod support;
mod traffic;
