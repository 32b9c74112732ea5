//! Task bus on Redis Streams: dispatch to agent consumer groups, results back to the orchestrator.
