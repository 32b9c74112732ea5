//! Moto fixtures: a fresh account, the lifecycle plugin's control endpoints, ECR images,
//! task definitions and services, made the same way by every test.

use std::time::Duration;

use aws_sdk_ecs::types::{ContainerDefinition, Tag};
use test_support::TestAws;

/// Like `test_support::aws()`, but probes moto with the plugin's cheap state endpoint instead of
/// `/moto-api/data.json`, which dumps every account and grows slow on a busy shared server, and
/// keeps the SDK's retries on (the release tests inject throttling).
pub async fn fresh_account() -> TestAws {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| test_support::DEFAULT_AWS_ENDPOINT_URL.to_owned());
    test_support::wait_http_ok(&format!("{endpoint}/_plugin/state?account=0"), Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("moto (with the lifecycle plugin) is not reachable at {endpoint}: start it with `scripts/env up` ({e:#})"));
    let account_id = test_support::random_account_id();
    let region = "us-east-1".to_owned();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new(region.clone()))
        .credentials_provider(aws_credential_types::Credentials::new(
            &account_id,
            "testing",
            None,
            None,
            "release-tests",
        ))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(4))
        .load()
        .await;
    TestAws {
        endpoint,
        account_id,
        region,
        config,
    }
}

/// POSTs `body` to one of the lifecycle plugin's control endpoints (tests/moto).
pub async fn control(aws: &TestAws, path: &str, body: serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", aws.endpoint))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!("the moto lifecycle plugin's {path} (`scripts/env up` starts it): {e}")
        });
    assert!(
        resp.status().is_success(),
        "{path}: {} (is the moto lifecycle plugin loaded? `scripts/env up` starts it)",
        resp.status()
    );
}

fn for_account(aws: &TestAws, mut body: serde_json::Value) -> serde_json::Value {
    body["account"] = serde_json::json!(aws.account_id);
    body
}

/// The plugin's timings for this account (`stage_seconds`, `minute_seconds`, `run_task_seconds`, …).
pub async fn plugin_config(aws: &TestAws, body: serde_json::Value) {
    control(aws, "/_plugin/config", for_account(aws, body)).await;
}

/// Injects a fault for this account (`{"kind": "circuit_breaker", "service": …}`, …).
pub async fn plugin_fault(aws: &TestAws, body: serde_json::Value) {
    control(aws, "/_plugin/faults", for_account(aws, body)).await;
}

/// Resets the emulator's per-action ECS call counters of this account.
pub async fn reset_plugin_calls(aws: &TestAws) {
    let resp = reqwest::Client::new()
        .delete(format!(
            "{}/_plugin/calls?account={}",
            aws.endpoint, aws.account_id
        ))
        .send()
        .await
        .expect("the moto lifecycle plugin's /_plugin/calls");
    assert!(
        resp.status().is_success(),
        "DELETE /_plugin/calls: {}",
        resp.status()
    );
}

/// The plugin's state for this account (pending faults, …).
pub async fn plugin_state(aws: &TestAws) -> serde_json::Value {
    reqwest::get(format!(
        "{}/_plugin/state?account={}",
        aws.endpoint, aws.account_id
    ))
    .await
    .expect("the moto lifecycle plugin's state endpoint")
    .json()
    .await
    .expect("plugin state JSON")
}

/// Creates an ECR repository; returns its URI.
pub async fn create_repo(aws: &TestAws, name: &str) -> String {
    aws_sdk_ecr::Client::new(&aws.config)
        .create_repository()
        .repository_name(name)
        .send()
        .await
        .expect("CreateRepository")
        .repository()
        .and_then(|r| r.repository_uri())
        .expect("repository URI")
        .to_owned()
}

/// Records an image manifest for `repo:tag` in ECR (no layers anywhere: the deployer only looks
/// the image up). Each tag gets its own manifest, so its own digest.
pub async fn put_image(ecr: &aws_sdk_ecr::Client, repo: &str, tag: &str) {
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2, "digest": format!("sha256:{tag:0>64}")},
        "layers": []
    });
    ecr.put_image()
        .repository_name(repo)
        .image_manifest(manifest.to_string())
        .image_tag(tag)
        .send()
        .await
        .expect("PutImage");
}

/// A container definition: `name` running `image` with `memory` MiB.
pub fn container(
    name: &str,
    image: &str,
    memory: i32,
) -> aws_sdk_ecs::types::builders::ContainerDefinitionBuilder {
    ContainerDefinition::builder()
        .name(name)
        .image(image)
        .memory(memory)
}

/// Registers a task definition of one container; returns its ARN.
pub async fn register(
    ecs: &aws_sdk_ecs::Client,
    family: &str,
    container: ContainerDefinition,
    tags: &[Tag],
) -> String {
    ecs.register_task_definition()
        .family(family)
        .container_definitions(container)
        .set_tags((!tags.is_empty()).then(|| tags.to_vec()))
        .send()
        .await
        .expect("RegisterTaskDefinition")
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .expect("task definition ARN")
        .to_owned()
}

/// Creates a service running `task_definition` with `desired` tasks.
pub async fn create_service(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    name: &str,
    task_definition: &str,
    desired: i32,
) {
    ecs.create_service()
        .cluster(cluster)
        .service_name(name)
        .task_definition(task_definition)
        .desired_count(desired)
        .send()
        .await
        .expect("CreateService");
}

/// The blue/green pair and listener rules of a load-balanced service, as Terraform makes them.
#[derive(Debug, Clone)]
pub struct LoadBalancerPair {
    pub blue: String,
    pub green: String,
    pub production_rule: String,
    pub test_rule: String,
    pub role: String,
}

/// Creates a load-balanced service the way Terraform does (target group, advancedConfiguration
/// with the alternate group, listener rules and role, BLUE_GREEN) with `desired` tasks.
pub async fn create_load_balanced_service(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    name: &str,
    task_definition: &str,
    desired: i32,
    lb: &LoadBalancerPair,
    configuration: Option<aws_sdk_ecs::types::DeploymentConfiguration>,
) {
    let balancer = aws_sdk_ecs::types::LoadBalancer::builder()
        .target_group_arn(&lb.blue)
        .container_name(name)
        .container_port(3000)
        .advanced_configuration(
            aws_sdk_ecs::types::AdvancedConfiguration::builder()
                .alternate_target_group_arn(&lb.green)
                .production_listener_rule(&lb.production_rule)
                .test_listener_rule(&lb.test_rule)
                .role_arn(&lb.role)
                .build(),
        )
        .build();
    ecs.create_service()
        .cluster(cluster)
        .service_name(name)
        .task_definition(task_definition)
        .desired_count(desired)
        .load_balancers(balancer)
        .set_deployment_configuration(configuration)
        .send()
        .await
        .expect("CreateService (load balanced)");
}

/// The service as DescribeServices shows it.
pub async fn describe_service(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    name: &str,
) -> aws_sdk_ecs::types::Service {
    ecs.describe_services()
        .cluster(cluster)
        .services(name)
        .send()
        .await
        .expect("DescribeServices")
        .services()
        .first()
        .cloned()
        .expect("the service")
}

/// The task definition a service runs.
pub async fn service_task_definition(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    name: &str,
) -> String {
    let out = ecs
        .describe_services()
        .cluster(cluster)
        .services(name)
        .send()
        .await
        .expect("DescribeServices");
    out.services()[0]
        .task_definition()
        .expect("the service's task definition")
        .to_owned()
}

/// A call of moto's EC2 Query API (the tests link no EC2 SDK): the account is the access key id
/// of the signature, which moto does not check. Returns the XML answer.
pub async fn ec2_query(aws: &TestAws, params: &[(&str, &str)]) -> String {
    let mut form: Vec<(&str, &str)> = vec![("Version", "2016-11-15")];
    form.extend_from_slice(params);
    let resp = reqwest::Client::new()
        .post(&aws.endpoint)
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/20260101/{}/ec2/aws4_request, SignedHeaders=host, Signature=0",
                aws.account_id, aws.region
            ),
        )
        .form(&form)
        .send()
        .await
        .expect("moto EC2 Query API");
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    assert!(status.is_success(), "EC2 {params:?}: {status} {body}");
    body
}

/// Every `<tag>value</tag>` of an XML answer.
pub fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|s| s.split(&close).next())
        .map(str::to_owned)
        .collect()
}

/// Real ELBv2 resources of a blue/green service in moto, as Terraform makes them: an
/// application load balancer in the default VPC, target groups blue and green, a production
/// listener (HTTP 80) whose rule forwards `/*` 100/0 to blue/green, and a test listener (HTTP
/// `test_port`) whose rule matches host `test_host` and path `/api/*`, forwarding the same.
pub struct Elbv2 {
    pub pair: LoadBalancerPair,
    pub dns_name: String,
    pub vpc: String,
    pub subnets: Vec<String>,
    pub test_host: String,
    pub test_port: u16,
    pub client: aws_sdk_elasticloadbalancingv2::Client,
}

impl Elbv2 {
    pub async fn create(aws: &TestAws, test_port: u16) -> Elbv2 {
        use aws_sdk_elasticloadbalancingv2::types::{
            Action, ActionTypeEnum, HostHeaderConditionConfig, PathPatternConditionConfig,
            ProtocolEnum, RuleCondition, TargetTypeEnum,
        };
        let client = aws_sdk_elasticloadbalancingv2::Client::new(&aws.config);
        let xml = ec2_query(aws, &[("Action", "DescribeSubnets")]).await;
        let subnets: Vec<String> = xml_values(&xml, "subnetId").into_iter().take(2).collect();
        let vpc = xml_values(&xml, "vpcId").into_iter().next().expect("a VPC");
        let lb = client
            .create_load_balancer()
            .name("platform")
            .set_subnets(Some(subnets.clone()))
            .send()
            .await
            .expect("CreateLoadBalancer");
        let lb = lb.load_balancers()[0].clone();
        let mut tgs = Vec::new();
        for n in ["blue", "green"] {
            let tg = client
                .create_target_group()
                .name(n)
                .protocol(ProtocolEnum::Http)
                .port(3000)
                .vpc_id(&vpc)
                .target_type(TargetTypeEnum::Instance)
                .send()
                .await
                .expect("CreateTargetGroup");
            tgs.push(tg.target_groups()[0].target_group_arn().unwrap().to_owned());
        }
        let forward = forward_to(&[(&tgs[0], 100), (&tgs[1], 0)]);
        let test_host = "orchestrator.test.internal".to_owned();
        let mut rules = Vec::new();
        for (port, conditions) in [
            (
                80,
                vec![
                    RuleCondition::builder()
                        .field("path-pattern")
                        .path_pattern_config(
                            PathPatternConditionConfig::builder().values("/*").build(),
                        )
                        .build(),
                ],
            ),
            (
                test_port,
                vec![
                    RuleCondition::builder()
                        .field("host-header")
                        .host_header_config(
                            HostHeaderConditionConfig::builder()
                                .values(&test_host)
                                .build(),
                        )
                        .build(),
                    RuleCondition::builder()
                        .field("path-pattern")
                        .path_pattern_config(
                            PathPatternConditionConfig::builder()
                                .values("/api/*")
                                .build(),
                        )
                        .build(),
                ],
            ),
        ] {
            let listener = client
                .create_listener()
                .load_balancer_arn(lb.load_balancer_arn().unwrap())
                .protocol(ProtocolEnum::Http)
                .port(i32::from(port))
                .default_actions(
                    Action::builder()
                        .r#type(ActionTypeEnum::FixedResponse)
                        .fixed_response_config(
                            aws_sdk_elasticloadbalancingv2::types::FixedResponseActionConfig::builder()
                                .status_code("404")
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
                .expect("CreateListener");
            let rule = client
                .create_rule()
                .listener_arn(listener.listeners()[0].listener_arn().unwrap())
                .priority(1)
                .set_conditions(Some(conditions))
                .actions(forward.clone())
                .send()
                .await
                .expect("CreateRule");
            rules.push(rule.rules()[0].rule_arn().unwrap().to_owned());
        }
        Elbv2 {
            pair: LoadBalancerPair {
                blue: tgs[0].clone(),
                green: tgs[1].clone(),
                production_rule: rules[0].clone(),
                test_rule: rules[1].clone(),
                role: format!("arn:aws:iam::{}:role/ecs-infrastructure", aws.account_id),
            },
            dns_name: lb.dns_name().unwrap().to_owned(),
            vpc,
            subnets,
            test_host,
            test_port,
            client,
        }
    }

    /// Makes the production listener rule forward to `groups` (target group ARN, weight).
    pub async fn forward_production(&self, groups: &[(&str, i32)]) {
        self.client
            .modify_rule()
            .rule_arn(&self.pair.production_rule)
            .actions(forward_to(groups))
            .send()
            .await
            .expect("ModifyRule");
    }

    /// The production listener rule's target groups and weights.
    pub async fn production_weights(&self) -> Vec<(String, i32)> {
        let out = self
            .client
            .describe_rules()
            .rule_arns(&self.pair.production_rule)
            .send()
            .await
            .expect("DescribeRules");
        out.rules()[0].actions()[0]
            .forward_config()
            .map(|f| f.target_groups())
            .unwrap_or_default()
            .iter()
            .map(|t| {
                (
                    t.target_group_arn().unwrap_or_default().to_owned(),
                    t.weight().unwrap_or_default(),
                )
            })
            .collect()
    }
}

/// A forward action to `groups` (target group ARN, weight).
pub fn forward_to(groups: &[(&str, i32)]) -> aws_sdk_elasticloadbalancingv2::types::Action {
    use aws_sdk_elasticloadbalancingv2::types::{
        Action, ActionTypeEnum, ForwardActionConfig, TargetGroupTuple,
    };
    let mut cfg = ForwardActionConfig::builder();
    for (tg, w) in groups {
        cfg = cfg.target_groups(
            TargetGroupTuple::builder()
                .target_group_arn(*tg)
                .weight(*w)
                .build(),
        );
    }
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .forward_config(cfg.build())
        .build()
}
