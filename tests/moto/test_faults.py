"""Injected faults (POST /_plugin/faults), one test each. Sources: docs/moto-plugin.md."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from conftest import BLUE_GREEN, pause_at


def _err(fn) -> dict:
    with pytest.raises(ClientError) as err:
        fn()
    return err.value.response


def _by_origin(acct, origin: str) -> str:
    """The ARN of the account's deployment started by `origin` (update, supersede, duplicate):
    the newest listed one may already be its successor."""
    [arn] = [d["arn"] for d in acct.state()["deployments"] if d["origin"] == origin]
    return arn


def test_throttle_fault_of_one_action(acct):
    acct.service()
    acct.fault(kind="throttle", action="ListServiceDeployments", count=2)
    acct.describe_service()  # another action is not affected
    for _ in range(2):
        resp = _err(acct.deployments)
        assert resp["Error"]["Code"] == "ThrottlingException"
        assert resp["Error"]["Message"] == "Rate exceeded"
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 400
    acct.deployments()
    assert acct.state()["faults"] == []


def test_throttle_fault_of_any_action(acct):
    acct.service()
    acct.fault(kind="throttle")
    assert _err(acct.describe_service)["Error"]["Code"] == "ThrottlingException"
    acct.describe_service()


def test_server_error_fault_of_one_action(acct):
    tds = acct.service(deployment_configuration={**BLUE_GREEN, "lifecycleHooks": [pause_at("POST_SCALE_UP")]})
    acct.update(taskDefinition=tds["v2"])
    arn = acct.newest()["serviceDeploymentArn"]
    _, hook = acct.wait_paused(arn)
    acct.fault(kind="server_error", action="ContinueServiceDeployment")
    resp = _err(lambda: acct.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"]))
    assert resp["Error"]["Code"] == "ServerException"
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert acct.describe(arn)["lifecycleHookDetails"][0]["status"] == "AWAITING_ACTION", "the failed call did nothing"
    acct.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"])
    acct.wait_status(arn, "SUCCESSFUL")


def test_rollback_failed(acct):
    tds = acct.service(deployment_configuration={**BLUE_GREEN, "lifecycleHooks": [pause_at("POST_PRODUCTION_TRAFFIC_SHIFT")]})
    acct.fault(kind="rollback_failed", service="svc")
    acct.update(taskDefinition=tds["v2"])
    arn = acct.newest()["serviceDeploymentArn"]
    acct.wait_paused(arn)
    acct.ecs.stop_service_deployment(serviceDeploymentArn=arn)
    done = acct.wait_status(arn, "ROLLBACK_FAILED", "ROLLBACK_SUCCESSFUL")
    assert done["status"] == "ROLLBACK_FAILED"
    assert "rollback failed" in done["statusReason"]
    assert done["finishedAt"]
    # mixed: the target's tasks keep running and keep the production traffic
    assert done["targetServiceRevision"]["runningTaskCount"] == 2
    assert done["targetServiceRevision"]["requestedProductionTrafficWeight"] == 100.0
    svc = acct.describe_service()
    assert svc["deployments"][0]["rolloutState"] == "FAILED"
    assert len(svc["deployments"]) == 2
    # only the next rollback fails
    acct.update(taskDefinition=tds["v3"])
    arn = acct.newest()["serviceDeploymentArn"]
    acct.wait_paused(arn)
    acct.ecs.stop_service_deployment(serviceDeploymentArn=arn)
    assert acct.wait_status(arn, "ROLLBACK_FAILED", "ROLLBACK_SUCCESSFUL")["status"] == "ROLLBACK_SUCCESSFUL"


def test_supersede_with_the_same_task_definition(acct):
    tds = acct.service(deployment_configuration=BLUE_GREEN)
    acct.fault(kind="supersede", service="svc")
    acct.update(taskDefinition=tds["v2"])
    first = _by_origin(acct, "update")
    old = acct.wait_status(first, "STOPPED")
    assert old["statusReason"] == "Replaced by a new service deployment."
    assert old["lifecycleStage"] == "POST_SCALE_UP"
    acct.wait_status(_by_origin(acct, "supersede"), "SUCCESSFUL")
    assert acct.describe_service()["taskDefinition"] == tds["v2"]
    assert {d["origin"] for d in acct.state()["deployments"]} == {"create", "update", "supersede"}


def test_supersede_with_another_task_definition_at_a_stage(acct):
    tds = acct.service(deployment_configuration=BLUE_GREEN)
    acct.fault(kind="supersede", service="svc", at="BAKE_TIME", task_definition=tds["v3"])
    acct.update(taskDefinition=tds["v2"])
    first = _by_origin(acct, "update")
    assert acct.wait_status(first, "STOPPED")["lifecycleStage"] == "BAKE_TIME"
    assert acct.describe_service()["taskDefinition"] == tds["v3"]
    acct.wait_status(_by_origin(acct, "supersede"), "SUCCESSFUL")


def test_supersede_of_a_rolling_deployment_fires_at_the_next_stage_it_has(acct):
    tds = acct.service()  # ROLLING: SCALE_UP, BAKE_TIME, CLEAN_UP
    acct.fault(kind="supersede", service="svc")  # at POST_SCALE_UP
    acct.update(taskDefinition=tds["v2"])
    assert acct.wait_status(_by_origin(acct, "update"), "STOPPED")["lifecycleStage"] == "BAKE_TIME"


def test_circuit_breaker_fault_is_ignored_when_not_configured(acct):
    tds = acct.service()
    acct.fault(kind="circuit_breaker", service="svc")
    acct.update(taskDefinition=tds["v2"])
    done = acct.wait_status(acct.newest()["serviceDeploymentArn"], "SUCCESSFUL", "ROLLBACK_SUCCESSFUL", "STOPPED")
    assert done["status"] == "SUCCESSFUL"
    assert done["deploymentCircuitBreaker"]["status"] == "DISABLED"
    state = acct.state()
    assert state["faults"] == []
    [ignored] = state["ignored_faults"]
    assert ignored["kind"] == "circuit_breaker" and "not enabled" in ignored["reason"]


@pytest.mark.parametrize("rollback,final", [(True, "ROLLBACK_SUCCESSFUL"), (False, "STOPPED")])
def test_circuit_breaker_fault_acts_when_configured(acct, rollback, final):
    tds = acct.service(deployment_configuration={"deploymentCircuitBreaker": {"enable": True, "rollback": rollback}})
    acct.fault(kind="circuit_breaker", service="svc")
    acct.update(taskDefinition=tds["v2"])
    done = acct.wait_status(acct.newest()["serviceDeploymentArn"], "SUCCESSFUL", "ROLLBACK_SUCCESSFUL", "STOPPED")
    assert done["status"] == final
    assert done["deploymentCircuitBreaker"]["status"] == "TRIGGERED"
    assert "circuit breaker" in done["statusReason"]


@pytest.mark.parametrize("desired,threshold", [(1, 3), (7, 4), (10, 5), (1000, 200)])
def test_circuit_breaker_threshold(acct, desired, threshold):
    tds = acct.service(desired=desired, deployment_configuration={"deploymentCircuitBreaker": {"enable": True, "rollback": True}})
    acct.update(taskDefinition=tds["v2"])
    dep = acct.describe(acct.newest()["serviceDeploymentArn"])
    assert dep["deploymentCircuitBreaker"]["threshold"] == threshold


def test_circuit_breaker_monitoring_completes_on_success(acct):
    tds = acct.service(deployment_configuration={"deploymentCircuitBreaker": {"enable": True, "rollback": True}})
    acct.update(taskDefinition=tds["v2"])
    done = acct.wait_status(acct.newest()["serviceDeploymentArn"], "SUCCESSFUL")
    assert done["deploymentCircuitBreaker"]["status"] == "MONITORING_COMPLETE"


def test_alarm_fault_is_ignored_without_alarms(acct):
    tds = acct.service()
    acct.fault(kind="alarm", service="svc", alarm="p99")
    acct.update(taskDefinition=tds["v2"])
    done = acct.wait_status(acct.newest()["serviceDeploymentArn"], "SUCCESSFUL", "ROLLBACK_SUCCESSFUL", "STOPPED")
    assert done["status"] == "SUCCESSFUL"
    assert acct.state()["ignored_faults"][0]["kind"] == "alarm"


def test_alarm_fault_naming_an_alarm_the_deployment_does_not_watch_is_ignored(acct):
    tds = acct.service(deployment_configuration={"alarms": {"alarmNames": ["p99"], "enable": True, "rollback": True}})
    acct.fault(kind="alarm", service="svc", alarm="errors")
    acct.update(taskDefinition=tds["v2"])
    done = acct.wait_status(acct.newest()["serviceDeploymentArn"], "SUCCESSFUL", "ROLLBACK_SUCCESSFUL", "STOPPED")
    assert done["status"] == "SUCCESSFUL"
    assert "not one of" in acct.state()["ignored_faults"][0]["reason"]


@pytest.mark.parametrize("rollback,final", [(True, "ROLLBACK_SUCCESSFUL"), (False, "STOPPED")])
def test_alarm_fault_acts_on_a_watched_alarm(acct, rollback, final):
    tds = acct.service(deployment_configuration={"alarms": {"alarmNames": ["errors", "p99"], "enable": True, "rollback": rollback}})
    acct.fault(kind="alarm", service="svc", alarm="p99")
    acct.update(taskDefinition=tds["v2"])
    done = acct.wait_status(acct.newest()["serviceDeploymentArn"], "SUCCESSFUL", "ROLLBACK_SUCCESSFUL", "STOPPED")
    assert done["status"] == final
    assert done["alarms"]["status"] == "TRIGGERED"
    assert done["alarms"]["triggeredAlarmNames"] == ["p99"]


def test_fail_task_fault(acct):
    acct.ecs.create_cluster(clusterName="c")
    td = acct.register("migrate", "img:1")
    acct.fault(kind="fail_task", family="migrate", exit_code=3, reason="migration failed")
    arn = acct.ecs.run_task(
        cluster="c",
        taskDefinition=td,
        launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-12345678"]}},
    )["tasks"][0]["taskArn"]
    task = acct.wait("the task to stop", lambda: (lambda t: t if t["lastStatus"] == "STOPPED" else None)(
        acct.ecs.describe_tasks(cluster="c", tasks=[arn])["tasks"][0]))
    assert task["containers"][0]["exitCode"] == 3
    assert task["stoppedReason"] == "migration failed"


def test_unknown_fault_kind_or_stage_is_refused(acct):
    status, _ = acct.control("POST", "/_plugin/faults", {"kind": "meteor"})
    assert status == 400
    status, _ = acct.control("POST", "/_plugin/faults", {"kind": "supersede", "at": "LATER"})
    assert status == 400
    assert acct.state()["faults"] == []
