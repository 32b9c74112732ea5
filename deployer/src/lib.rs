//! The deployer library: everything the `deployer` CLI does, reusable by the platform's
//! deployment agent. Organised by what users do: config, render, diff, verify, build, push,
//! release, rollback, history.
