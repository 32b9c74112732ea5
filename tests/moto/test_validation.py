"""Create/UpdateService checks AWS makes (InvalidParameterException), and UpdateService keeping
what the request omits. Sources: docs/moto-plugin.md."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from conftest import BLUE_GREEN, pause_at


def _code(err: pytest.ExceptionInfo) -> str:
    return err.value.response["Error"]["Code"]


def _msg(err: pytest.ExceptionInfo) -> str:
    return err.value.response["Error"]["Message"]


@pytest.mark.parametrize("stage", ["TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"])
def test_pause_hook_at_a_traffic_shift_stage_is_rejected(acct, stage):
    with pytest.raises(ClientError) as err:
        acct.service(deployment_configuration={**BLUE_GREEN, "lifecycleHooks": [pause_at(stage)]})
    assert _code(err) == "InvalidParameterException"
    assert "PAUSE hooks cannot be configured at TEST_TRAFFIC_SHIFT or PRODUCTION_TRAFFIC_SHIFT" in _msg(err)
    assert acct.ecs.list_services(cluster="c")["serviceArns"] == [], "nothing was created"


@pytest.mark.parametrize(
    "stage",
    ["RECONCILE_SERVICE", "PRE_SCALE_UP", "POST_SCALE_UP", "POST_TEST_TRAFFIC_SHIFT",
     "PRE_PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT"],
)
def test_pause_hook_at_other_hook_stages_is_accepted(acct, stage):
    acct.service(deployment_configuration={**BLUE_GREEN, "lifecycleHooks": [pause_at(stage)]})


def test_hook_stage_outside_the_hook_stage_enum_is_rejected(acct):
    # SCALE_UP and BAKE_TIME are lifecycle stages but not DeploymentLifecycleHookStage values
    with pytest.raises(ClientError) as err:
        acct.service(deployment_configuration={**BLUE_GREEN, "lifecycleHooks": [pause_at("BAKE_TIME")]})
    assert _code(err) == "InvalidParameterException"


@pytest.mark.parametrize("minutes,ok", [(0, False), (1, True), (20160, True), (20161, False)])
def test_hook_timeout_must_be_1_to_20160_minutes(acct, minutes, ok):
    config = {**BLUE_GREEN, "lifecycleHooks": [pause_at("POST_SCALE_UP", minutes=minutes)]}
    if ok:
        acct.service(deployment_configuration=config)
        return
    with pytest.raises(ClientError) as err:
        acct.service(deployment_configuration=config)
    assert _code(err) == "InvalidParameterException"
    assert "timeoutInMinutes" in _msg(err)


@pytest.mark.parametrize("missing", ["hookTargetArn", "roleArn"])
def test_lambda_hook_needs_target_and_role(acct, missing):
    hook = {
        "targetType": "AWS_LAMBDA",
        "hookTargetArn": "arn:aws:lambda:us-east-1:123456789012:function:check",
        "roleArn": "arn:aws:iam::123456789012:role/ecs-hooks",
        "lifecycleStages": ["POST_SCALE_UP"],
    }
    del hook[missing]
    with pytest.raises(ClientError) as err:
        acct.service(deployment_configuration={**BLUE_GREEN, "lifecycleHooks": [hook]})
    assert _code(err) == "InvalidParameterException"
    assert missing in _msg(err)


def test_hook_without_target_type_is_a_lambda_hook(acct):
    # DeploymentLifecycleHook.targetType: "If not specified, the default value is AWS_LAMBDA."
    with pytest.raises(ClientError) as err:
        acct.service(deployment_configuration={**BLUE_GREEN, "lifecycleHooks": [{"lifecycleStages": ["POST_SCALE_UP"]}]})
    assert "hookTargetArn" in _msg(err)


def test_lambda_hook_may_use_the_traffic_shift_stages(acct):
    hook = {
        "targetType": "AWS_LAMBDA",
        "hookTargetArn": "arn:aws:lambda:us-east-1:123456789012:function:check",
        "roleArn": "arn:aws:iam::123456789012:role/ecs-hooks",
        "lifecycleStages": ["TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"],
    }
    acct.service(deployment_configuration={**BLUE_GREEN, "lifecycleHooks": [hook]})


def test_blue_green_without_bake_time_is_rejected(acct):
    with pytest.raises(ClientError) as err:
        acct.service(deployment_configuration={"strategy": "BLUE_GREEN"})
    assert _code(err) == "InvalidParameterException"
    assert "bakeTimeInMinutes" in _msg(err)


def test_update_service_validates_and_changes_nothing_on_error(acct):
    tds = acct.service(deployment_configuration={**BLUE_GREEN, "lifecycleHooks": [pause_at("POST_SCALE_UP")]})
    with pytest.raises(ClientError) as err:
        acct.update(
            taskDefinition=tds["v2"],
            deploymentConfiguration={**BLUE_GREEN, "lifecycleHooks": [pause_at("TEST_TRAFFIC_SHIFT")]},
        )
    assert _code(err) == "InvalidParameterException"
    svc = acct.describe_service()
    assert svc["taskDefinition"] == tds["v1"]
    assert svc["deploymentConfiguration"]["lifecycleHooks"][0]["lifecycleStages"] == ["POST_SCALE_UP"]
    assert len(acct.deployments()) == 1, "no deployment was started"


@pytest.mark.parametrize("controller", ["CODE_DEPLOY", "EXTERNAL"])
def test_non_ecs_controller_rejects_a_task_definition_update(acct, controller):
    tds = acct.service(controller=controller)
    with pytest.raises(ClientError) as err:
        acct.update(taskDefinition=tds["v2"])
    assert _code(err) == "InvalidParameterException"
    assert f"Unable to update task definition on services with a {controller} deployment controller" in _msg(err)
    assert acct.describe_service()["taskDefinition"] == tds["v1"]
    # what such a controller does take: the desired count
    assert acct.update(desiredCount=5)["desiredCount"] == 5


def test_code_deploy_message_is_awss(acct):
    tds = acct.service(controller="CODE_DEPLOY")
    with pytest.raises(ClientError) as err:
        acct.update(taskDefinition=tds["v1"])  # even the current one
    assert _msg(err) == (
        "Unable to update task definition on services with a CODE_DEPLOY deployment controller. "
        "Use AWS CodeDeploy to trigger a new deployment."
    )


def test_update_without_desired_count_keeps_it(acct):
    tds = acct.service(desired=8)
    svc = acct.update(taskDefinition=tds["v2"])
    assert svc["desiredCount"] == 8
    assert acct.describe_service()["desiredCount"] == 8


def test_update_without_deployment_configuration_keeps_it(acct):
    config = {
        **BLUE_GREEN,
        "lifecycleHooks": [pause_at("POST_SCALE_UP")],
        "alarms": {"alarmNames": ["p99"], "enable": True, "rollback": True},
    }
    tds = acct.service(deployment_configuration=config)
    acct.update(taskDefinition=tds["v2"])
    got = acct.describe_service()["deploymentConfiguration"]
    assert got["lifecycleHooks"][0]["lifecycleStages"] == ["POST_SCALE_UP"]
    assert got["alarms"]["alarmNames"] == ["p99"]


def test_partial_deployment_configuration_keeps_omitted_fields_by_default(acct):
    config = {
        **BLUE_GREEN,
        "bakeTimeInMinutes": 3,
        "lifecycleHooks": [pause_at("POST_SCALE_UP")],
        "alarms": {"alarmNames": ["p99"], "enable": True, "rollback": True},
    }
    acct.service(deployment_configuration=config)
    acct.update(deploymentConfiguration={"bakeTimeInMinutes": 5})
    got = acct.describe_service()["deploymentConfiguration"]
    assert got["bakeTimeInMinutes"] == 5
    assert got["strategy"] == "BLUE_GREEN"
    assert got["lifecycleHooks"][0]["lifecycleStages"] == ["POST_SCALE_UP"]
    assert got["alarms"]["alarmNames"] == ["p99"]


def test_knob_deployment_configuration_update_replace_resets_omitted_fields(acct):
    acct.config(deployment_configuration_update="replace")
    acct.service(deployment_configuration={"strategy": "ROLLING", "alarms": {"alarmNames": ["p99"], "enable": True, "rollback": True}})
    acct.update(deploymentConfiguration={"maximumPercent": 150})
    got = acct.describe_service()["deploymentConfiguration"]
    assert got.get("maximumPercent") == 150
    assert "alarms" not in got


def test_knob_lambda_role_required_false_accepts_a_lambda_hook_without_role(acct):
    acct.config(lambda_role_required=False)
    hook = {"hookTargetArn": "arn:aws:lambda:us-east-1:123456789012:function:check", "lifecycleStages": ["POST_SCALE_UP"]}
    acct.service(deployment_configuration={**BLUE_GREEN, "lifecycleHooks": [hook]})
