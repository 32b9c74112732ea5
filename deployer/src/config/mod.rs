//! `deployer.toml`: the typed configuration, its loading and layering.
//!
//! Layers, lowest first: the file; `DEPLOYER_*` environment variables; CLI flags (applied by the
//! CLI through [`Overrides`]). An environment variable addresses any key by its path, levels
//! separated by `__`, list items by index:
//! `DEPLOYER_ENVIRONMENTS__STAGING__CLUSTER=other`,
//! `DEPLOYER_ENVIRONMENTS__STAGING__SERVICES__0__DESIRED_COUNT=3`.
//! A value replacing a string stays a string; otherwise it is read as a TOML value (`3`, `true`,
//! `["a","b"]`) and falls back to a string.
//!
//! Unknown keys and wrong types are errors naming the file, line and column, with a hint.
//! Secret values (API token, webhook URL) never live in the file: the file names the environment
//! variable holding them, and the loaded config keeps them as [`SecretString`]s that print as
//! `[redacted]`.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

/// Prefix of environment variables overriding keys of the file.
pub const ENV_PREFIX: &str = "DEPLOYER_";
/// Variables with this prefix that are CLI flags, not config keys.
const FLAG_VARS: &[&str] = &[
    "DEPLOYER_CONFIG",
    "DEPLOYER_ENV",
    "DEPLOYER_PROFILE",
    "DEPLOYER_REGION",
    "DEPLOYER_ENDPOINT_URL",
    "DEPLOYER_OUTPUT",
    "DEPLOYER_LOG",
    "DEPLOYER_NO_COLOR",
    "DEPLOYER_GIT_SHA",
    "DEPLOYER_IMAGE",
];
pub const DEFAULT_FILE: &str = "deployer.toml";

mod error;
pub mod git;
mod load;
mod schema;
mod tf;

pub use error::ConfigError;
pub use load::{Overrides, load, load_with_env, locate};
pub use schema::*;
pub use tf::{TfOutputs, tf_output_refs};

impl Config {
    /// The named environment, or an error listing the known ones (with the closest name).
    pub fn environment(&self, name: &str) -> Result<&Environment, ConfigError> {
        if let Some(e) = self.environments.get(name)
            && let Some(why) = &e.unresolved_tf_outputs
        {
            return Err(ConfigError::Invalid {
                path: self.source.clone(),
                message: why.clone(),
                hint: Some(
                    "run terraform output -json for this environment, or fix `tf_output`".into(),
                ),
            });
        }
        self.environments.get(name).ok_or_else(|| {
            let known: Vec<String> = self.environments.keys().cloned().collect();
            let hint = known
                .iter()
                .map(|k| (strsim::jaro_winkler(name, k), k))
                .filter(|(s, _)| *s > 0.75)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, k)| format!("did you mean `{k}`?"))
                .or_else(|| Some("pass --env with one of them".into()));
            ConfigError::UnknownEnvironment {
                name: name.to_string(),
                path: self.source.clone(),
                known,
                hint,
            }
        })
    }

    /// A path from the file, made absolute against the file's directory.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }

    pub fn templates_dir(&self) -> PathBuf {
        self.path(&self.project.templates)
    }

    /// Applies CLI flags to an environment.
    pub fn apply_overrides(&mut self, env: &str, o: &Overrides) {
        if let Some(e) = self.environments.get_mut(env) {
            if o.region.is_some() {
                e.region = o.region.clone();
            }
            if o.profile.is_some() {
                e.profile = o.profile.clone();
            }
            if o.endpoint_url.is_some() {
                e.endpoint_url = o.endpoint_url.clone();
            }
        }
    }

    /// The ECR repository name for an environment.
    pub fn ecr_repository<'a>(&'a self, env: &'a Environment) -> &'a str {
        env.ecr_repository
            .as_deref()
            .unwrap_or(&self.project.ecr_repository)
    }
}

/// The exposed value of a secret, for the few places that must send it (HTTP headers).
pub fn expose(s: &SecretString) -> &str {
    s.expose_secret()
}

pub fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Value::from(*f),
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(a) => serde_json::Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => serde_json::Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::load::{check, parse_str, resolve_secrets};
    use super::*;

    const MIN: &str = r#"
[project]
name = "platform"
ecr_repository = "platform"

[environments.staging]
region = "eu-west-1"
cluster = "staging"

[[environments.staging.services]]
name = "orchestrator"
template = "orchestrator"
strategy = "rolling"
desired_count = 2
"#;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let mut c = parse_str(Path::new("deployer.toml"), text, &env)?;
        c.source = "deployer.toml".into();
        resolve_secrets(&mut c, &env)?;
        check(&c)?;
        Ok(c)
    }

    #[test]
    fn minimal_file_loads_with_defaults() {
        let c = parse(MIN, &[]).unwrap();
        let e = c.environment("staging").unwrap();
        assert_eq!(e.services[0].desired_count, Some(2));
        assert_eq!(e.lock_table, "deployer-locks");
        assert_eq!(e.timeouts.deployment, Duration::from_secs(1800));
    }

    #[test]
    fn unknown_key_has_line_and_suggestion() {
        let text = MIN.replace("cluster = \"staging\"", "clustr = \"staging\"");
        let e = parse(&text, &[]).unwrap_err();
        let ConfigError::Parse { line, hint, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*line, Some(8));
        assert_eq!(
            hint.as_deref(),
            Some("did you mean `cluster`? (keys are listed in docs/deployer.md)")
        );
    }

    #[test]
    fn hook_stages_are_the_ones_the_ecs_model_defines() {
        let with_hook = |stage: &str| {
            MIN.replace("strategy = \"rolling\"", "strategy = \"blue_green\"")
                + &format!("hooks = [{{ stage = \"{stage}\" }}]\n")
        };
        // PRE_PRODUCTION_TRAFFIC_SHIFT (LINEAR/CANARY steps) is in the model; a typo is not.
        parse(&with_hook("PRE_PRODUCTION_TRAFFIC_SHIFT"), &[]).unwrap();
        let e = parse(&with_hook("POST_TEST_TRAFIC_SHIFT"), &[]).unwrap_err();
        assert!(e.to_string().contains("is not a lifecycle stage"), "{e}");
        assert!(
            e.hint().unwrap().contains("POST_TEST_TRAFFIC_SHIFT"),
            "{e:?}"
        );
        // PAUSE is not allowed while traffic shifts (defect 8 of issue #11: these two passed).
        for stage in ["TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"] {
            let e = parse(&with_hook(stage), &[]).unwrap_err();
            assert!(e.to_string().contains("does not allow a PAUSE hook"), "{e}");
            assert!(!e.hint().unwrap().contains(&format!(" {stage},")), "{e:?}");
        }
        // Lambda hook fields are refused, not silently dropped (defect 9).
        let lambda = MIN.replace("strategy = \"rolling\"", "strategy = \"blue_green\"")
            + "hooks = [{ stage = \"POST_SCALE_UP\", target_arn = \"arn:aws:lambda:eu-west-1:1:function:f\", role_arn = \"arn:aws:iam::1:role/r\" }]\n";
        let e = parse(&lambda, &[]).unwrap_err();
        assert!(e.to_string().contains("Lambda hook"), "{e}");
    }

    #[test]
    fn linear_and_canary_settings_are_held_to_what_ecs_accepts() {
        let lb = "[environments.staging.services.load_balancer]\ncontainer_name = \"app\"\ncontainer_port = 8080\ntarget_group_arn = \"blue\"\nalternate_target_group_arn = \"green\"\n";
        let with = |strategy: &str, keys: &str, lb: &str| {
            MIN.replace(
                "strategy = \"rolling\"",
                &format!("strategy = \"{strategy}\""),
            ) + keys
                + lb
        };
        let c = parse(
            &with(
                "linear",
                "step_percent = 25.0\nstep_bake_time = \"2m\"\n",
                lb,
            ),
            &[],
        )
        .unwrap();
        let s = &c.environment("staging").unwrap().services[0];
        assert_eq!(s.step_percent, Some(25.0));
        assert_eq!(s.step_bake_time, Some(Duration::from_secs(120)));
        parse(
            &with(
                "canary",
                "canary_percent = 0.5\ncanary_bake_time = \"10m\"\n",
                lb,
            ),
            &[],
        )
        .unwrap();
        for (strategy, keys, wants) in [
            (
                "linear",
                "step_percent = 2.0\n",
                "not a percentage ECS accepts",
            ),
            (
                "linear",
                "step_percent = 25.05\n",
                "not a percentage ECS accepts",
            ),
            (
                "canary",
                "canary_percent = 100.5\n",
                "not a percentage ECS accepts",
            ),
            (
                "linear",
                "step_bake_time = \"90s\"\n",
                "not a bake time ECS accepts",
            ),
            (
                "canary",
                "canary_bake_time = \"25h\"\n",
                "not a bake time ECS accepts",
            ),
            (
                "canary",
                "step_percent = 10.0\n",
                "set, but the strategy is CANARY",
            ),
            (
                "blue_green",
                "canary_percent = 10.0\n",
                "set, but the strategy is BLUE_GREEN",
            ),
        ] {
            let e = parse(&with(strategy, keys, lb), &[]).unwrap_err();
            assert!(e.to_string().contains(wants), "{keys}: {e}");
            assert!(e.hint().is_some(), "{e:?}");
        }
        let e = parse(&with("linear", "", ""), &[]).unwrap_err();
        assert!(e.to_string().contains("has none"), "{e}");
    }

    #[test]
    fn desired_count_is_left_alone_unless_set() {
        let c = parse(&MIN.replace("desired_count = 2\n", ""), &[]).unwrap();
        assert_eq!(
            c.environment("staging").unwrap().services[0].desired_count,
            None
        );
    }

    #[test]
    fn wrong_type_has_line_and_hint() {
        let text = MIN.replace("desired_count = 2", "desired_count = \"two\"");
        let e = parse(&text, &[]).unwrap_err();
        let ConfigError::Parse { line, hint, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*line, Some(14));
        assert_eq!(hint.as_deref(), Some("write the number without quotes"));
    }

    #[test]
    fn env_vars_override_file_values_and_type_errors_name_the_var() {
        let c = parse(
            MIN,
            &[
                ("DEPLOYER_ENVIRONMENTS__STAGING__CLUSTER", "other"),
                (
                    "DEPLOYER_ENVIRONMENTS__STAGING__SERVICES__0__DESIRED_COUNT",
                    "5",
                ),
            ],
        )
        .unwrap();
        let e = c.environment("staging").unwrap();
        assert_eq!(e.cluster, "other");
        assert_eq!(e.services[0].desired_count, Some(5));

        let err = parse(
            MIN,
            &[(
                "DEPLOYER_ENVIRONMENTS__STAGING__SERVICES__0__DESIRED_COUNT",
                "many",
            )],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("DEPLOYER_ENVIRONMENTS__STAGING__SERVICES__0__DESIRED_COUNT:"),
            "{err}"
        );
    }

    #[test]
    fn tf_output_references_resolve_from_the_outputs_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("out.json"),
            r#"{"cluster_name": {"value": "c-1", "type": "string", "sensitive": false},
                "subnets": {"value": ["s-1", "s-2"], "type": ["list", "string"], "sensitive": false}}"#,
        )
        .unwrap();
        let text = MIN
            .replace("cluster = \"staging\"", "cluster = '{{tf_output \"cluster_name\"}}'\ntf_output = \"out.json\"\nnetwork = { subnets = ['{{ tf_output \"subnets\" }}', \"s-3\"] }\nvars = { keep = '{{tf_output \"x\"}}' }");
        let path = dir.path().join("deployer.toml");
        std::fs::write(&path, text).unwrap();
        let c = load_with_env(&path, &[]).unwrap();
        let e = c.environment("staging").unwrap();
        assert_eq!(e.cluster, "c-1");
        assert_eq!(
            e.network.as_ref().unwrap().subnets,
            vec!["s-1", "s-2", "s-3"]
        );
        assert_eq!(e.vars["keep"].as_str(), Some("{{tf_output \"x\"}}"));

        std::fs::remove_file(dir.path().join("out.json")).unwrap();
        let c = load_with_env(&path, &[]).unwrap();
        let err = c.environment("staging").unwrap_err().to_string();
        assert!(err.contains("out.json"), "{err}");
    }

    #[test]
    fn unknown_environment_suggests() {
        let c = parse(MIN, &[]).unwrap();
        let e = c.environment("stagin").unwrap_err();
        assert_eq!(e.hint(), Some("did you mean `staging`?"));
    }

    #[test]
    fn secrets_are_redacted_when_serialised() {
        let text = MIN.replace(
            "cluster = \"staging\"\n",
            "cluster = \"staging\"\napi_token_env = \"TOK\"\n",
        );
        let c = parse(&text, &[("TOK", "s3cr3t-value")]).unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("s3cr3t-value"));
        assert!(json.contains(REDACTED));
    }
}
