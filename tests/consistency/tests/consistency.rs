//! Terraform, the workflows and the deployer's config/templates agree — and the check notices
//! when a name changes on one side only (mutation tests on a copy of the files).

use std::path::Path;

use consistency_tests::{
    DeployerCli, check_all, check_deployer_config, check_invocations, terraform_environment,
    terraform_environments, workflow_invocations,
};
use test_support::{copy_tree, repo_root};

/// The files the checks read, copied so a test can change one side only.
fn copy_of_repo() -> tempfile::TempDir {
    let root = repo_root();
    let tmp = tempfile::tempdir().unwrap();
    let copy = |rel: &str| {
        let from = root.join(rel);
        let to = tmp.path().join(rel);
        if from.is_dir() {
            copy_tree(&from, &to).unwrap();
        } else if from.is_file() {
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&from, &to).unwrap();
        }
    };
    for rel in [
        "terraform/environments",
        "terraform/modules",
        ".github/workflows",
        "deployer.toml",
        "templates",
        "deployer/src/state/lock.rs",
        "deployer/src/state/audit.rs",
    ] {
        copy(rel);
    }
    tmp
}

fn edit(root: &Path, rel: &str, from: &str, to: &str) {
    let path = root.join(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{rel} does not contain {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// A deployer.toml that states the contract as Terraform declares it (used where the test must
/// not depend on the real file's other content).
fn contract_config(root: &Path) -> serde_json::Value {
    let mut envs = serde_json::Map::new();
    for env in terraform_environments(root).unwrap() {
        let tf = terraform_environment(root, &env).unwrap();
        let services: Vec<serde_json::Value> = tf
            .services
            .iter()
            .map(|(name, s)| {
                let mut v = serde_json::json!({
                    "name": name,
                    "template": name,
                    "strategy": s.strategy.to_lowercase(),
                    "hooks": s.pause_stages.iter().map(|st| serde_json::json!({"stage": st})).collect::<Vec<_>>(),
                });
                if s.load_balanced {
                    v["load_balancer"] = serde_json::json!({
                        "container_name": s.container_name,
                        "container_port": s.container_port,
                        "target_group_arn": "{{tf_output \"orchestrator_target_group_arn\"}}",
                        "alternate_target_group_arn": "{{tf_output \"orchestrator_alternate_target_group_arn\"}}",
                    });
                }
                v
            })
            .collect();
        envs.insert(
            env.clone(),
            serde_json::json!({
                "cluster": tf.cluster_name,
                "ecr_repository": tf.ecr_repository,
                "lock_table": tf.lock_table,
                "audit_table": tf.audit_table,
                "services": services,
            }),
        );
    }
    serde_json::json!({ "project": { "templates": "no-templates" }, "environments": envs })
}

fn problems_with_contract(root: &Path) -> Vec<String> {
    let config = contract_config(&repo_root());
    let mut problems = Vec::new();
    for env in terraform_environments(root).unwrap() {
        let tf = terraform_environment(root, &env).unwrap();
        problems.extend(
            check_deployer_config(root, &config, &tf)
                .into_iter()
                .filter(|p| !p.contains("does not exist")), // no templates in the contract
        );
    }
    problems
}

#[test]
fn terraform_catalogue_declares_the_blue_green_orchestrator_and_headless_agents() {
    let root = repo_root();
    let envs = terraform_environments(&root).unwrap();
    assert_eq!(envs, ["production", "staging"]);
    for env in envs {
        let tf = terraform_environment(&root, &env).unwrap();
        assert_eq!(tf.cluster_name, format!("agentic-{env}"));
        let orc = &tf.services["orchestrator"];
        assert!(orc.load_balanced);
        assert_eq!(orc.strategy, "BLUE_GREEN");
        assert_eq!(orc.container_port, Some(3000));
        assert_eq!(orc.pause_stages, ["POST_TEST_TRAFFIC_SHIFT"]);
        assert_eq!(orc.family, format!("agentic-{env}-orchestrator"));
        for kind in ["scaffold", "validation", "e2e", "integration", "deployment"] {
            let a = &tf.services[&format!("agent-{kind}")];
            assert!(
                !a.load_balanced && a.container_port.is_none(),
                "agent-{kind} is headless"
            );
        }
        assert_eq!(tf.services.len(), 6);
        for out in [
            "ecs_cluster_name",
            "orchestrator_target_group_arn",
            "orchestrator_alternate_target_group_arn",
            "production_listener_rule_arn",
            "test_listener_rule_arn",
            "ecs_infrastructure_role_arn",
            "task_execution_role_arn",
            "orchestrator_task_role_arn",
            "agent_task_role_arn",
            "migrate_task_role_arn",
            "database_url_secret_arn",
            "log_group_name",
            "deploy_lock_table_name",
            "deploy_audit_table_name",
        ] {
            assert!(tf.outputs.contains(out), "{env} lacks output {out}");
        }
        assert_eq!(tf.lock_table, format!("agentic-{env}-deploy-lock"));
        assert_eq!(
            tf.target_groups,
            [
                format!("agentic-{env}-orc-blue"),
                format!("agentic-{env}-orc-green")
            ]
        );
    }
    // The contract stated from Terraform itself is consistent (the baseline of the mutations).
    assert_eq!(problems_with_contract(&root), Vec::<String>::new());
}

#[test]
fn workflows_call_real_deployer_subcommands_with_existing_flags() {
    let root = repo_root();
    let calls = workflow_invocations(&root).unwrap();
    let subs: Vec<String> = calls.iter().map(|c| c.args.join(" ")).collect();
    for needed in ["release", "rollback", "verify", "push", "build"] {
        assert!(
            subs.iter().any(|s| s == needed),
            "no workflow runs `deployer {needed}` ({subs:?})"
        );
    }
    let cli = DeployerCli::locate(&root).unwrap();
    assert_eq!(check_invocations(&cli, &calls), Vec::<String>::new());
}

#[test]
fn deployer_config_templates_workflows_and_terraform_agree() {
    let root = repo_root();
    let cli = DeployerCli::locate(&root).unwrap();
    if !root.join("deployer.toml").is_file() {
        eprintln!("note: no deployer.toml yet: checking templates, tables and workflows only");
    }
    let problems = check_all(&root, Some(&cli)).unwrap();
    assert!(
        problems.is_empty(),
        "inconsistencies:\n- {}",
        problems.join("\n- ")
    );
}

#[test]
fn renaming_a_container_in_terraform_only_is_caught() {
    let tmp = copy_of_repo();
    edit(
        tmp.path(),
        "terraform/environments/staging/main.tf",
        "container_name = \"orchestrator\"",
        "container_name = \"orchestrator-v2\"",
    );
    let problems = problems_with_contract(tmp.path());
    println!("{problems:#?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("orchestrator-v2") && p.contains("container_name")),
        "{problems:#?}"
    );
}

#[test]
fn renaming_a_service_or_port_in_terraform_only_is_caught() {
    let tmp = copy_of_repo();
    edit(
        tmp.path(),
        "terraform/environments/production/main.tf",
        "\"agent-e2e\" = {",
        "\"agent-end2end\" = {",
    );
    edit(
        tmp.path(),
        "terraform/environments/staging/main.tf",
        "container_port = 3000",
        "container_port = 8080",
    );
    let problems = problems_with_contract(tmp.path());
    println!("{problems:#?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("`agent-e2e`") && p.contains("production")),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("agent-end2end")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("container_port") && p.contains("8080")),
        "{problems:#?}"
    );
}

#[test]
fn renaming_an_output_or_target_group_in_terraform_only_is_caught() {
    let tmp = copy_of_repo();
    edit(
        tmp.path(),
        "terraform/environments/staging/outputs.tf",
        "output \"orchestrator_target_group_arn\"",
        "output \"orchestrator_blue_target_group_arn\"",
    );
    let problems = problems_with_contract(tmp.path());
    println!("{problems:#?}");
    assert!(
        problems.iter().any(
            |p| p.contains("tf_output \"orchestrator_target_group_arn\"") && p.contains("staging")
        ),
        "{problems:#?}"
    );
}

#[test]
fn a_workflow_calling_a_missing_subcommand_or_flag_is_caught() {
    let tmp = copy_of_repo();
    edit(
        tmp.path(),
        ".github/workflows/release.yml",
        "deployer verify --env staging",
        "deployer verify --environment staging",
    );
    edit(
        tmp.path(),
        ".github/workflows/release.yml",
        "deployer rollback --env",
        "deployer revert --env",
    );
    let cli = DeployerCli::locate(&repo_root()).unwrap();
    let problems = check_invocations(&cli, &workflow_invocations(tmp.path()).unwrap());
    println!("{problems:#?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("`--environment` does not exist on `deployer verify`")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("`revert` is not a deployer subcommand")),
        "{problems:#?}"
    );
}

#[test]
fn a_deploy_table_key_changed_on_one_side_is_caught() {
    let tmp = copy_of_repo();
    edit(
        tmp.path(),
        "terraform/modules/deploy_state/main.tf",
        "range_key                   = \"release_id\"",
        "range_key                   = \"id\"",
    );
    let keys = consistency_tests::deployer_table_keys(tmp.path()).unwrap();
    let tf = consistency_tests::terraform_table_keys(tmp.path(), "audit").unwrap();
    assert_ne!(keys["audit"], tf, "the audit key schemas must now differ");
    let problems = consistency_tests::check_table_keys(tmp.path()).unwrap();
    println!("{problems:#?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("audit table's key schema")),
        "{problems:#?}"
    );
}

#[test]
fn a_template_using_an_output_terraform_lacks_is_caught() {
    let tmp = copy_of_repo();
    edit(
        tmp.path(),
        "terraform/environments/staging/outputs.tf",
        "output \"orchestrator_task_role_arn\"",
        "output \"orchestrator_role_arn\"",
    );
    edit(
        tmp.path(),
        "terraform/environments/staging/main.tf",
        "container_port = 3000",
        "container_port = 8080",
    );
    let tf = terraform_environment(tmp.path(), "staging").unwrap();
    let problems = consistency_tests::check_template_dir(tmp.path(), Path::new("templates"), &tf);
    println!("{problems:#?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("tf_output \"orchestrator_task_role_arn\"")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("containerPort 3000") && p.contains("8080")),
        "{problems:#?}"
    );
}

#[test]
fn a_tf_output_file_no_workflow_downloads_is_caught() {
    let root = repo_root();
    let envs = terraform_environments(&root).unwrap();
    let good = serde_json::json!({"environments": {
        "staging": {"tf_output": "terraform/environments/staging/outputs.json"},
        "production": {"tf_output": "terraform/environments/production/outputs.json"},
    }});
    assert_eq!(
        consistency_tests::check_tf_output_files(&root, &good, &envs),
        Vec::<String>::new()
    );
    let moved = serde_json::json!({"environments": {
        "staging": {"tf_output": "infra/staging-outputs.json"},
        "production": {"tf_output": "terraform/environments/production/outputs.json"},
    }});
    let problems = consistency_tests::check_tf_output_files(&root, &moved, &envs);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("infra/staging-outputs.json"),
        "{problems:#?}"
    );
}

#[test]
fn renaming_in_the_real_deployer_toml_only_is_caught() {
    let tmp = copy_of_repo();
    assert!(
        tmp.path().join("deployer.toml").is_file(),
        "deployer.toml is part of the project (issue 4)"
    );
    let baseline = check_all(tmp.path(), None).unwrap();
    assert_eq!(
        baseline,
        Vec::<String>::new(),
        "the unmodified copy must be consistent"
    );
    edit(
        tmp.path(),
        "deployer.toml",
        "name = \"agent-e2e\"",
        "name = \"agent-end2end\"",
    );
    edit(
        tmp.path(),
        "deployer.toml",
        "container_port = 3000",
        "container_port = 3001",
    );
    let problems = check_all(tmp.path(), None).unwrap();
    println!("{problems:#?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("service `agent-end2end` is not an ECS service")),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("ECS service `agent-e2e` exists in terraform/environments/staging")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("container_port Some(3001)")),
        "{problems:#?}"
    );
}

#[test]
fn rendered_task_definitions_match_terraform_and_a_one_sided_size_change_is_caught() {
    let root = repo_root();
    assert_eq!(
        consistency_tests::check_rendered(&root).unwrap(),
        Vec::<String>::new()
    );

    let tmp = copy_of_repo();
    edit(
        tmp.path(),
        "deployer.toml",
        "orchestrator_memory = \"2048\"",
        "orchestrator_memory = \"4096\"",
    );
    edit(
        tmp.path(),
        "terraform/environments/production/main.tf",
        "container_name = \"agent-scaffold\"",
        "container_name = \"scaffold\"",
    );
    let problems = consistency_tests::check_rendered(tmp.path()).unwrap();
    println!("{problems:#?}");
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("staging: `orchestrator`")
                && p.contains("memory is `4096`, Terraform's is `2048`")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("production: `agent-scaffold`")
                && p.contains("container name is `agent-scaffold`, Terraform's is `scaffold`")),
        "{problems:#?}"
    );
}

#[test]
fn a_release_step_without_the_api_token_is_caught() {
    let tmp = copy_of_repo();
    let root = tmp.path();
    let config = consistency_tests::load_config(root).unwrap();
    let clean =
        consistency_tests::check_workflow_env(&config, &workflow_invocations(root).unwrap());
    assert!(clean.is_empty(), "{clean:#?}");
    // The token is read from Secrets Manager and exported in the release step itself.
    edit(
        root,
        ".github/workflows/release.yml",
        "export PLATFORM_API_TOKEN\n          deployer release --env staging",
        "deployer release --env staging",
    );
    let problems =
        consistency_tests::check_workflow_env(&config, &workflow_invocations(root).unwrap());
    assert!(
        problems
            .iter()
            .any(|p| p.contains("job `staging`") && p.contains("runs without PLATFORM_API_TOKEN")),
        "{problems:#?}"
    );
}

fn publisher() -> consistency_tests::backlog_metric::Publisher<'static> {
    use platform_orchestrator::cloudwatch;
    consistency_tests::backlog_metric::Publisher {
        namespace: cloudwatch::NAMESPACE,
        metric: cloudwatch::BACKLOG_METRIC,
        dimension: cloudwatch::KIND_DIMENSION,
        kinds: platform_core::Stage::ALL
            .iter()
            .map(|s| s.as_str())
            .collect(),
    }
}

#[test]
fn the_published_backlog_metric_is_the_one_terraform_scales_agents_on() {
    let root = repo_root();
    let problems =
        consistency_tests::backlog_metric::check_backlog_metric(&root, &publisher()).unwrap();
    assert_eq!(problems, Vec::<String>::new());
}

#[test]
fn a_backlog_metric_renamed_on_one_side_is_caught() {
    let tmp = copy_of_repo();
    edit(
        tmp.path(),
        "terraform/modules/platform/variables.tf",
        "default     = \"Agentic/Platform\"",
        "default     = \"Agentic/Agents\"",
    );
    edit(
        tmp.path(),
        "terraform/modules/platform/main.tf",
        "dimensions = { AgentKind = each.value.agent_kind }",
        "dimensions = { Kind = each.value.agent_kind }",
    );
    edit(
        tmp.path(),
        "terraform/environments/staging/main.tf",
        "agent_kind = \"e2e\"",
        "agent_kind = \"e2e-tests\"",
    );
    edit(
        tmp.path(),
        "templates/task-definitions/orchestrator.json.hbs",
        "cloudwatch_namespace=\"Agentic/Platform\"",
        "cloudwatch_namespace=\"Agentic/Platfrom\"",
    );
    let problems =
        consistency_tests::backlog_metric::check_backlog_metric(tmp.path(), &publisher()).unwrap();
    println!("{problems:#?}");
    let has = |needle: &str| problems.iter().any(|p| p.contains(needle));
    assert!(
        has("`backlog_metric_namespace` defaults to `Agentic/Agents`"),
        "{problems:#?}"
    );
    assert!(
        has("reads the dimension `Kind`, but the orchestrator publishes `AgentKind`"),
        "{problems:#?}"
    );
    assert!(has("agent_kind `e2e-tests`"), "{problems:#?}");
    assert!(
        has("terraform/environments/staging/main.tf: no agent service with agent_kind `e2e`"),
        "{problems:#?}"
    );
    assert!(has("publishes to `Agentic/Platfrom`"), "{problems:#?}");
    let mut publisher = publisher();
    publisher.metric = "Backlog";
    let problems =
        consistency_tests::backlog_metric::check_backlog_metric(&repo_root(), &publisher).unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("`backlog_metric_name` defaults to `StreamBacklog`")),
        "{problems:#?}"
    );
}
