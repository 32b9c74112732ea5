"""The plugin's knobs (what AWS leaves unspecified) and profiles, one test each.
Sources: docs/moto-plugin.md."""

from __future__ import annotations

import subprocess
import time

import pytest
from botocore.exceptions import ClientError
from conftest import BLUE_GREEN, Account, pause_at, start_server


def test_profile_defaults_to_fast(acct):
    snap = acct.state()["config"]
    assert snap["profile"] == "fast"
    assert snap["paused_stage"] == "stage" and snap["list_finished_hooks"] is True
    assert snap["list_lag_seconds"] == 0 and snap["duplicate_deployments"] is False


def test_profile_strict(acct):
    snap = acct.config(profile="strict")
    assert snap["profile"] == "strict"
    assert snap["list_finished_hooks"] is False
    assert snap["paused_stage"] == "omitted"
    assert snap["list_lag_seconds"] == 2.0
    assert snap["duplicate_deployments"] is True
    assert snap["stage_seconds"] == 0.3, "fast timings"


def test_profile_realistic(acct):
    snap = acct.config(profile="realistic")
    assert snap["minute_seconds"] == 60.0
    assert snap["pending_seconds"] == [1.0, 3.0]
    assert 1.0 <= snap["stage_seconds"] <= 10.0
    assert snap["throttle"] == {}, "no documented per-action rates to apply"


def test_explicit_keys_override_the_profile_in_the_same_and_later_calls(acct):
    snap = acct.config(profile="strict", list_lag_seconds=0.5)
    assert snap["list_lag_seconds"] == 0.5 and snap["paused_stage"] == "omitted"
    snap = acct.config(paused_stage="previous")
    assert snap["paused_stage"] == "previous" and snap["list_lag_seconds"] == 0.5
    snap = acct.config(profile="strict")
    assert snap["list_lag_seconds"] == 2.0, "a profile starts the account afresh"


def test_bad_config_is_refused_and_changes_nothing(acct):
    for body in ({"profile": "slow"}, {"paused_stage": "later"}, {"nonsense": 1}, {"list_finished_hooks": "no"},
                 {"throttle": {"*": {"rate": 1, "burst": 0}}}):
        status, out = acct.control("POST", "/_plugin/config", body)
        assert status == 400, (body, out)
    assert acct.state()["config"]["profile"] == "fast"


def test_env_profile_sets_the_default_for_every_account():
    proc, endpoint = start_server({"ECS_PLUGIN_PROFILE": "strict"})
    try:
        a = Account(endpoint)
        assert a.state()["config"]["profile"] == "strict"
        assert a.config(profile="fast")["paused_stage"] == "stage"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert isinstance(proc, subprocess.Popen)


def test_pending_seconds(acct):
    acct.config(pending_seconds=2.0)
    tds = acct.service()
    acct.update(taskDefinition=tds["v2"])
    arn = acct.newest()["serviceDeploymentArn"]
    dep = acct.describe(arn)
    assert dep["status"] == "PENDING" and "startedAt" not in dep
    time.sleep(2.1)
    dep = acct.describe(arn)
    assert dep["status"] != "PENDING" and dep["startedAt"]


def _paused_stage(acct, hook_stage: str) -> dict:
    tds = acct.service(deployment_configuration={**BLUE_GREEN, "lifecycleHooks": [pause_at(hook_stage)]})
    acct.update(taskDefinition=tds["v2"])
    dep, _ = acct.wait_paused(acct.newest()["serviceDeploymentArn"])
    return dep


@pytest.mark.parametrize(
    "mode,expected",
    [("stage", "POST_SCALE_UP"), ("omitted", None), ("previous", "SCALE_UP")],
)
def test_knob_paused_stage(acct, mode, expected):
    acct.config(paused_stage=mode)
    assert _paused_stage(acct, "POST_SCALE_UP").get("lifecycleStage") == expected


def test_knob_paused_stage_at_pre_production_traffic_shift(acct):
    # PRE_PRODUCTION_TRAFFIC_SHIFT is a hook stage but no ServiceDeploymentLifecycleStage value
    acct.config(paused_stage="previous")
    assert _paused_stage(acct, "PRE_PRODUCTION_TRAFFIC_SHIFT")["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"


@pytest.mark.parametrize("listed", [True, False])
def test_knob_list_finished_hooks(acct, listed):
    acct.config(list_finished_hooks=listed)
    tds = acct.service(deployment_configuration={**BLUE_GREEN, "lifecycleHooks": [pause_at("POST_SCALE_UP")]})
    acct.update(taskDefinition=tds["v2"])
    arn = acct.newest()["serviceDeploymentArn"]
    _, hook = acct.wait_paused(arn)
    acct.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"])
    done = acct.wait_status(arn, "SUCCESSFUL")
    hooks = done.get("lifecycleHookDetails", [])
    assert hooks == ([{**hook, "status": "SUCCEEDED"}] if listed else [])


def test_knob_list_lag_seconds(acct):
    acct.config(list_lag_seconds=3.0)
    tds = acct.service()
    time.sleep(3.0)  # the first deployment becomes visible
    acct.update(taskDefinition=tds["v2"])
    listed = acct.deployments()
    assert len(listed) == 1, "the new deployment is not listed yet"
    first_arn = listed[0]["serviceDeploymentArn"]
    new = acct.wait("the new deployment to be listed", lambda: [d for d in acct.deployments() if d["serviceDeploymentArn"] != first_arn], 8)
    assert new
    # and before that it was MISSING in Describe: check with a fresh one
    acct.update(taskDefinition=tds["v3"])
    state = acct.state()
    newest = max(state["deployments"], key=lambda d: d["created"])["arn"]
    out = acct.ecs.describe_service_deployments(serviceDeploymentArns=[newest])
    assert out["failures"] == [{"arn": newest, "reason": "MISSING"}]
    acct.wait("Describe to find it", lambda: not acct.ecs.describe_service_deployments(serviceDeploymentArns=[newest])["failures"], 8)


def test_knob_duplicate_deployments(acct):
    acct.config(duplicate_deployments=True, duplicate_after_seconds=0.5, duplicate_stop_seconds=2.0, stage_seconds=2.0)
    tds = acct.service()
    acct.update(taskDefinition=tds["v2"])
    both = acct.wait("a second deployment", lambda: (lambda ds: ds if len(ds) == 3 else None)(acct.deployments()), 5)
    [first] = [d for d in both if d["serviceDeploymentArn"] == [x["arn"] for x in acct.state()["deployments"] if x["origin"] == "update"][0]]
    second = both[0]
    assert second["serviceDeploymentArn"] != first["serviceDeploymentArn"]
    assert second["targetServiceRevisionArn"] != first["targetServiceRevisionArn"], "a new service revision"
    assert acct.describe(first["serviceDeploymentArn"])["status"] == "IN_PROGRESS", "both run for a while"
    old = acct.wait_status(first["serviceDeploymentArn"], "STOPPED", timeout=8)
    assert old["statusReason"] == "Replaced by a new service deployment."
    assert old["finishedAt"] > acct.describe(second["serviceDeploymentArn"])["createdAt"]
    acct.wait_status(second["serviceDeploymentArn"], "SUCCESSFUL", timeout=20)
    assert acct.describe_service()["taskDefinition"] == tds["v2"], "same task definition"
    state = acct.state()
    assert {d["origin"] for d in state["deployments"]} == {"create", "update", "duplicate"}


def test_knob_throttle_bucket(acct):
    acct.service()
    acct.config(throttle={"ListServiceDeployments": {"rate": 0.5, "burst": 3}})
    for _ in range(3):
        acct.deployments()
    with pytest.raises(ClientError) as err:
        acct.deployments()
    assert err.value.response["Error"]["Code"] == "ThrottlingException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    acct.describe_service()  # another action has no bucket
    time.sleep(2.1)
    acct.deployments()  # refilled at 0.5 tokens/s


def test_knob_throttle_star_bucket_is_shared_by_unlisted_actions(acct):
    acct.service()
    acct.config(throttle={"*": {"rate": 0, "burst": 2}, "DescribeServices": {"rate": 0, "burst": 100}})
    acct.deployments()
    acct.ecs.list_services(cluster="c")
    with pytest.raises(ClientError) as err:
        acct.deployments()
    assert err.value.response["Error"]["Code"] == "ThrottlingException"
    acct.describe_service()


def test_calls_are_counted_per_action_and_reset(acct):
    acct.service()
    acct.deployments()
    acct.deployments()
    calls = acct.state()["calls"]
    assert calls["ListServiceDeployments"] == 2
    assert calls["CreateService"] == 1
    status, _ = acct.control("DELETE", "/_plugin/calls")
    assert status == 200
    assert acct.state()["calls"] == {}


def test_calls_are_counted_before_faults(acct):
    acct.service()
    acct.fault(kind="throttle", action="ListServiceDeployments")
    with pytest.raises(ClientError):
        acct.deployments()
    assert acct.state()["calls"]["ListServiceDeployments"] == 1


def test_realistic_profile_keeps_a_new_deployment_pending_for_a_second_or_more(acct):
    acct.config(profile="realistic")
    tds = acct.service()
    acct.update(taskDefinition=tds["v2"])
    dep = acct.describe(acct.newest()["serviceDeploymentArn"])
    assert dep["status"] == "PENDING" and "startedAt" not in dep
