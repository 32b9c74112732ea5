//! What the deployer remembers between runs, in DynamoDB: the deploy lock, the audit record of
//! every release, and reading that history back.

pub mod audit;
pub mod history;
pub mod lock;
pub mod outcome;
