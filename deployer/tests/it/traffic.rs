//! What the load balancer tells a release (issue #12, sections 3, 4 and 6c), against real ELBv2
//! resources in moto ([`Elbv2`]): the test endpoint found from the test listener rule (URL, Host
//! header, path patterns) and used by the smoke checks at the test-traffic gate; a release
//! refused before anything changes when the production listener rule does not forward to
//! exactly the service's two target groups at 100/0; and a rolled-back release naming the new
//! target group's target health and the service's stopped tasks.

use std::time::Duration;

use super::support::*;

const ORCHESTRATOR: &[Service] = &[Service {
    name: "orchestrator",
    kind: "blue_green",
}];

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

async fn world(test_port: u16, migration: bool) -> World {
    World::with_services(
        Options {
            migration,
            elbv2_test_port: Some(test_port),
            ..Options::no_bake()
        },
        ORCHESTRATOR,
    )
    .await
}

/// `deployer verify -o json`'s check called `name`.
fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?}: {report:#}"))
}

async fn verify(
    w: &World,
    test_url: &str,
    prod_url: &str,
) -> (std::process::Output, serde_json::Value) {
    let out = w
        .deployer(
            &["verify", "--git-sha", NEW_SHA, "-o", "json"],
            test_url,
            prod_url,
        )
        .run()
        .await;
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify JSON ({e}):\n{}\n{}", stdout(&out), stderr(&out)));
    (out, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_endpoint_is_found_from_the_test_listener_rule_and_gates_the_release() {
    let new = spawn_target(NEW_SHA, None).await;
    let port = port_of(&new.url);
    let w = world(port, false).await;
    let elb = &w.elbv2;

    // verify reports what the smoke checks will call: the listener's scheme and port, the
    // load balancer's DNS name, the rule's host-header and path-pattern conditions.
    let (out, report) = verify(&w, "", &new.url).await;
    let found = check(&report, "service orchestrator test endpoint");
    let detail = found["detail"].as_str().unwrap_or_default();
    assert_eq!(found["status"], "pass", "{found}\n{}", stderr(&out));
    assert!(
        detail.starts_with(&format!("http://{}:{port} (", elb.dns_name)),
        "{detail}"
    );
    assert!(
        detail.contains(&format!("Host: {}", elb.test_host)),
        "{detail}"
    );
    assert!(detail.contains("paths /api/*"), "{detail}");
    assert!(detail.contains(&elb.pair.test_rule), "{detail}");
    assert_eq!(
        check(&report, "service orchestrator production traffic")["status"],
        "pass"
    );

    // The release's test-traffic gate calls that endpoint (moto's DNS name resolved to the real
    // smoke target by urls.test_resolve): it passes only if the checks reached the new version.
    let out = w
        .deployer(RELEASE, "", &new.url)
        .env(
            "DEPLOYER_ENVIRONMENTS__TEST__URLS__TEST_RESOLVE",
            "127.0.0.1",
        )
        .run()
        .await;
    assert_exit(&out, Code::Ok);
    assert_stderr_has(
        &out,
        &format!(
            "test endpoint: http://{}:{port} (Host: {}",
            elb.dns_name, elb.test_host
        ),
    );
    assert_stderr_has(&out, "resolved to 127.0.0.1 (urls.test_resolve)");
    w.assert_all_on(NEW_SHA).await;

    // ECS swapped the pair: green now takes all production traffic, and verify accepts it.
    let weights = elb.production_weights().await;
    assert!(
        weights.contains(&(elb.pair.green.clone(), 100))
            && weights.contains(&(elb.pair.blue.clone(), 0)),
        "{weights:?}"
    );
    let (_, report) = verify(&w, "", &new.url).await;
    let traffic = check(&report, "service orchestrator production traffic");
    assert_eq!(traffic["status"], "pass", "{traffic}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_rule_the_checks_cannot_reach_fails_verify_and_names_why() {
    let w = world(8080, false).await;
    let elb = &w.elbv2;
    // The rule only routes /internal/*: the health check's path would hit the default action.
    elb.client
        .modify_rule()
        .rule_arn(&elb.pair.test_rule)
        .conditions(
            aws_sdk_elasticloadbalancingv2::types::RuleCondition::builder()
                .field("path-pattern")
                .values("/internal/*")
                .build(),
        )
        .send()
        .await
        .expect("ModifyRule");
    let (out, report) = verify(&w, "", NOWHERE).await;
    assert_exit(&out, Code::Preflight);
    let found = check(&report, "service orchestrator test endpoint");
    let detail = found["detail"].as_str().unwrap_or_default();
    assert_eq!(found["status"], "fail", "{found}");
    assert!(
        detail.contains("'health reports the release' (/api/v1/health)")
            && detail.contains("/internal/*"),
        "{detail}"
    );
}

/// What a refused release must leave: the service on its revision, no migration task, no audit
/// record, the lock free, the rule as it was.
async fn assert_nothing_changed(w: &World, before_td: &str, rule: &[(String, i32)]) {
    assert_untouched(w, before_td).await;
    let elb = &w.elbv2;
    assert_eq!(elb.production_weights().await, rule);
}

/// The service on its revision, no task ran, no audit record, the lock free.
async fn assert_untouched(w: &World, before_td: &str) {
    assert_eq!(w.service_td("orchestrator").await, before_td);
    let tasks = w
        .ecs
        .list_tasks()
        .cluster(&w.cluster)
        .send()
        .await
        .expect("ListTasks");
    assert!(tasks.task_arns().is_empty(), "a task ran: {tasks:?}");
    let stopped = w
        .ecs
        .list_tasks()
        .cluster(&w.cluster)
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Stopped)
        .send()
        .await
        .expect("ListTasks");
    assert!(stopped.task_arns().is_empty(), "a task ran: {stopped:?}");
    assert!(w.history().await.is_empty(), "an audit record was written");
    assert!(w.lock_is_free().await);
}

/// Before, `release` only warned and went on when the rule could not be read (`verify` failed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_production_rule_that_cannot_be_read_refuses_the_release() {
    let w = world(8080, true).await;
    let elb = &w.elbv2;
    elb.client
        .delete_rule()
        .rule_arn(&elb.pair.production_rule)
        .send()
        .await
        .expect("DeleteRule");
    let before_td = w.service_td("orchestrator").await;

    let out = w.run(RELEASE, NOWHERE).await;
    assert_exit(&out, Code::Preflight);
    for needle in [
        "its production listener rule could not be read",
        &elb.pair.production_rule,
        "production_listener_rule",
        "elasticloadbalancing:DescribeRules",
    ] {
        assert_stderr_has(&out, needle);
    }
    assert_untouched(&w, &before_td).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_production_rule_split_50_50_refuses_the_release_before_anything_changes() {
    let w = world(8080, true).await;
    let elb = &w.elbv2;
    elb.forward_production(&[(&elb.pair.blue, 50), (&elb.pair.green, 50)])
        .await;
    let before_td = w.service_td("orchestrator").await;
    let rule = elb.production_weights().await;

    let out = w.run(RELEASE, NOWHERE).await;
    assert_exit(&out, Code::Preflight);
    for needle in [
        "production listener rule",
        "it forwards to blue at weight 50, green at weight 50",
        "expected exactly the service's target groups blue and green with one at weight 100 and the other at 0",
        "terraform apply",
        "aws/containers-roadmap#2853",
    ] {
        assert_stderr_has(&out, needle);
    }
    assert_nothing_changed(&w, &before_td, &rule).await;

    let (out, report) = verify(&w, NOWHERE, NOWHERE).await;
    assert_exit(&out, Code::Preflight);
    let traffic = check(&report, "service orchestrator production traffic");
    assert_eq!(traffic["status"], "fail", "{traffic}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_production_rule_forwarding_to_a_foreign_target_group_refuses_the_release() {
    let w = world(8080, true).await;
    let elb = &w.elbv2;
    let other = elb
        .client
        .create_target_group()
        .name("other")
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
        .port(3000)
        .vpc_id(&elb.vpc)
        .send()
        .await
        .expect("CreateTargetGroup")
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_owned();
    elb.forward_production(&[(&elb.pair.blue, 100), (&other, 0)])
        .await;
    let before_td = w.service_td("orchestrator").await;
    let rule = elb.production_weights().await;

    let (out, report) = verify(&w, NOWHERE, NOWHERE).await;
    assert_exit(&out, Code::Preflight);
    let traffic = check(&report, "service orchestrator production traffic");
    let detail = traffic["detail"].as_str().unwrap_or_default();
    assert_eq!(traffic["status"], "fail", "{traffic}");
    assert!(
        detail.contains(&format!("{other} not the service's"))
            && detail.contains(&format!("{} missing", elb.pair.green)),
        "{detail}"
    );

    let out = w.run(RELEASE, NOWHERE).await;
    assert_exit(&out, Code::Preflight);
    assert_stderr_has(&out, "not the service's");
    assert_nothing_changed(&w, &before_td, &rule).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_release_names_target_health_and_stopped_tasks() {
    let w = world(8080, false).await;
    let elb = &w.elbv2;
    // A target of the new (green) group that is down: an EC2 instance, stopped.
    let run = ec2_query(
        &w.aws,
        &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-12c6146b"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("InstanceType", "t3.micro"),
            ("SubnetId", &elb.subnets[0]),
        ],
    )
    .await;
    let instance = xml_values(&run, "instanceId")
        .into_iter()
        .next()
        .expect("an instance");
    elb.client
        .register_targets()
        .target_group_arn(&elb.pair.green)
        .targets(
            aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                .id(&instance)
                .port(3000)
                .build(),
        )
        .send()
        .await
        .expect("RegisterTargets");
    // Registered while running, then stopped: ELBv2 reports it unused, Target.InvalidState.
    ec2_query(
        &w.aws,
        &[("Action", "StopInstances"), ("InstanceId.1", &instance)],
    )
    .await;
    // A task of the service that exited 3 (what the circuit breaker counts).
    plugin_fault(
        &w.aws,
        serde_json::json!({"kind": "fail_task", "family": "orchestrator", "exit_code": 3, "reason": "Essential container in task exited"}),
    )
    .await;
    let td = w.service_td("orchestrator").await;
    let task = w
        .ecs
        .run_task()
        .cluster(&w.cluster)
        .task_definition(&td)
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .group("service:orchestrator")
        .send()
        .await
        .expect("RunTask")
        .tasks()[0]
        .task_arn()
        .unwrap()
        .to_owned();
    test_support::eventually(
        "the service's task stopped",
        Duration::from_secs(20),
        || async {
            let out = w
                .ecs
                .describe_tasks()
                .cluster(&w.cluster)
                .tasks(&task)
                .send()
                .await?;
            Ok((out.tasks()[0].last_status() == Some("STOPPED")).then_some(()))
        },
    )
    .await
    .unwrap();

    plugin_fault(
        &w.aws,
        serde_json::json!({"kind": "circuit_breaker", "service": "orchestrator", "at": "SCALE_UP"}),
    )
    .await;
    let new = spawn_target(NEW_SHA, None).await;
    let out = w.run(RELEASE, &new.url).await;
    assert_exit(&out, Code::RolledBackEcs);
    for needle in [
        "target health of green (0 of 1 healthy)",
        &format!("{instance}:3000 unused (Target.InvalidState: Target is in the stopped state)"),
        "stopped task",
        "Essential container in task exited [EssentialContainerExited]",
        "orchestrator exit code 3",
        "event: ",
    ] {
        assert_stderr_has(&out, needle);
    }
}
