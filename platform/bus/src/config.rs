//! Settings from the environment: the parsing helper every platform process uses for its
//! variables, and the bus's own settings (see docs/platform.md).

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?} is invalid: {why}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub why: String,
}

/// Reads an optional environment variable and parses it, with a message naming the variable.
pub fn env_parse<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|e: T::Err| ConfigError {
            name,
            value: v,
            why: e.to_string(),
        }),
        _ => Ok(default),
    }
}

/// Short, because live consumers refresh their claims every third of it (agents) and a dead
/// consumer's entries should be taken over within seconds: recovery ≤ 1.25 × this.
pub const DEFAULT_VISIBILITY_TIMEOUT_MS: u64 = 3_000;

/// Bus settings, from the environment (see docs/platform.md).
#[derive(Debug, Clone)]
pub struct BusConfig {
    pub url: String,
    pub prefix: String,
    /// An entry pending this long is taken over by another consumer.
    pub visibility_timeout: Duration,
    /// After this many deliveries a task goes to the dead-letter stream.
    pub max_deliveries: u64,
    /// Approximate cap on each stream's length (MAXLEN ~).
    pub maxlen: usize,
    /// How long a read blocks waiting for new entries.
    pub block: Duration,
    /// Entries per read.
    pub batch: usize,
}

impl BusConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let url = std::env::var("REDIS_URL").unwrap_or_default();
        if url.trim().is_empty() {
            return Err(ConfigError {
                name: "REDIS_URL",
                value: url,
                why: "it is required, e.g. redis://127.0.0.1:6379".into(),
            });
        }
        Ok(Self {
            url,
            prefix: std::env::var("PLATFORM_REDIS_PREFIX").unwrap_or_default(),
            visibility_timeout: Duration::from_millis(env_parse(
                "PLATFORM_VISIBILITY_TIMEOUT_MS",
                DEFAULT_VISIBILITY_TIMEOUT_MS,
            )?)
            .max(Duration::from_millis(100)),
            max_deliveries: env_parse("PLATFORM_MAX_DELIVERIES", 5u64)?.max(1),
            maxlen: env_parse("PLATFORM_STREAM_MAXLEN", 100_000usize)?.max(100),
            block: Duration::from_millis(env_parse("PLATFORM_BLOCK_MS", 1_000u64)?.max(1)),
            batch: env_parse("PLATFORM_BATCH", 32usize)?.clamp(1, 1000),
        })
    }
}
