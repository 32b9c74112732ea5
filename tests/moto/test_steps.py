"""LINEAR and CANARY: production traffic in steps, PRE_PRODUCTION_TRAFFIC_SHIFT hooks before every
step, rollback at any step, listener rule weights, and the knobs AWS leaves open.
Sources: docs/moto-plugin.md ("Traffic steps")."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError
from conftest import pause_at

PRE = "PRE_PRODUCTION_TRAFFIC_SHIFT"


def linear(step: float, bake: int, **extra) -> dict:
    return {"strategy": "LINEAR", "bakeTimeInMinutes": 0,
            "linearConfiguration": {"stepPercent": step, "stepBakeTimeInMinutes": bake}, **extra}


def canary(pct: float, bake: int, **extra) -> dict:
    return {"strategy": "CANARY", "bakeTimeInMinutes": 0,
            "canaryConfiguration": {"canaryPercent": pct, "canaryBakeTimeInMinutes": bake}, **extra}


def weights(dep: dict) -> tuple[float, float]:
    """(new revision's, old revision's) requestedProductionTrafficWeight."""
    return (dep["targetServiceRevision"]["requestedProductionTrafficWeight"],
            dep["sourceServiceRevisions"][0]["requestedProductionTrafficWeight"])


def awaiting(dep: dict) -> list[dict]:
    return [h for h in dep.get("lifecycleHookDetails", []) if h["status"] == "AWAITING_ACTION"]


def start(acct, config: dict, **service_kwargs) -> str:
    tds = acct.service(deployment_configuration=config, **service_kwargs)
    acct.update(taskDefinition=tds["v2"])
    return acct.newest()["serviceDeploymentArn"]


def wait_weight(acct, arn: str, weight: float, timeout: float = 10.0) -> dict:
    return acct.wait(f"production weight {weight}",
                     lambda: (lambda d: d if weights(d)[0] == weight else None)(acct.describe(arn)), timeout)


def walk_paused_steps(acct, arn: str, count: int) -> list[tuple[str, tuple[float, float], str | None]]:
    """Continues `count` PRE_PRODUCTION_TRAFFIC_SHIFT pauses; returns (hookId, weights,
    lifecycleStage) seen at each."""
    seen = []
    for _ in range(count):
        dep, hook = acct.wait_paused(arn)
        seen.append((hook["hookId"], weights(dep), dep.get("lifecycleStage")))
        acct.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"])
    return seen


# ---------------------------------------------------------------------- steps and weights
def test_linear_of_four_steps_pauses_before_each_with_a_fresh_hook(acct):
    arn = start(acct, linear(25.0, 1, lifecycleHooks=[pause_at(PRE)]))
    seen = walk_paused_steps(acct, arn, 4)
    assert [w for _, w, _ in seen] == [(0.0, 100.0), (25.0, 75.0), (50.0, 50.0), (75.0, 25.0)]
    assert len({h for h, _, _ in seen}) == 4, "a new hookId at every step"
    assert [s for _, _, s in seen] == [PRE] * 4
    done = acct.wait_status(arn, "SUCCESSFUL")
    assert weights(done) == (100.0, 0.0)
    assert [h["status"] for h in done["lifecycleHookDetails"]] == ["SUCCEEDED"] * 4
    assert not awaiting(acct.describe(arn))


def test_linear_shifts_step_percent_per_step_and_bakes_between_steps(acct):
    # 25 % steps, 1 configured minute (0.5 s in the fixture) between steps, none after 100 %
    arn = start(acct, linear(25.0, 1))
    samples: list[tuple[float, float, str | None]] = []
    deadline = time.time() + 15
    while time.time() < deadline:
        dep = acct.describe(arn)
        samples.append((time.time(), weights(dep)[0], dep.get("lifecycleStage")))
        if dep["status"] == "SUCCESSFUL":
            break
        time.sleep(0.03)
    seen = []
    for _, w, _ in samples:
        if w not in seen:
            seen.append(w)
    assert seen == [0.0, 25.0, 50.0, 75.0, 100.0]
    first = {w: next(t for t, x, _ in samples if x == w) for w in (25.0, 50.0, 75.0, 100.0)}
    for a, b in ((25.0, 50.0), (50.0, 75.0), (75.0, 100.0)):
        assert first[b] - first[a] >= 0.45, f"the step bake between {a} % and {b} %"
    assert {s for _, w, s in samples if w in (25.0, 50.0)} == {"PRODUCTION_TRAFFIC_SHIFT"}


def test_linear_last_step_is_what_is_left(acct):
    # 40 %: 40, 80, 100 (CloudFormation LinearConfiguration: floor(100 / stepPercent) bakes)
    arn = start(acct, linear(40.0, 0, lifecycleHooks=[pause_at(PRE)]))
    seen = walk_paused_steps(acct, arn, 3)
    assert [w[0] for _, w, _ in seen] == [0.0, 40.0, 80.0]
    acct.wait_status(arn, "SUCCESSFUL")
    assert len(acct.describe(arn)["lifecycleHookDetails"]) == 3


def test_linear_defaults_are_ten_percent_steps(acct):
    # LinearConfiguration defaults: stepPercent 10.0, stepBakeTimeInMinutes 6
    arn = start(acct, {"strategy": "LINEAR", "bakeTimeInMinutes": 0, "lifecycleHooks": [pause_at(PRE)]})
    walk_paused_steps(acct, arn, 1)
    dep = wait_weight(acct, arn, 10.0)
    assert not awaiting(dep), "baking step 1"
    dep, _ = acct.wait_paused(arn, timeout=10)
    assert weights(dep) == (10.0, 90.0)
    acct.ecs.stop_service_deployment(serviceDeploymentArn=arn)


def test_canary_shifts_canary_percent_bakes_then_shifts_the_rest(acct):
    arn = start(acct, canary(10.0, 2, lifecycleHooks=[pause_at(PRE)]))
    seen = walk_paused_steps(acct, arn, 1)
    t0 = time.time()
    wait_weight(acct, arn, 10.0)
    dep, hook = acct.wait_paused(arn)
    assert time.time() - t0 >= 0.9, "canaryBakeTimeInMinutes 2 = 1 s before the next step's hook"
    assert weights(dep) == (10.0, 90.0)
    assert hook["hookId"] != seen[0][0]
    acct.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"])
    done = acct.wait_status(arn, "SUCCESSFUL")
    assert done["targetServiceRevision"]["requestedProductionTrafficWeight"] == 100.0
    assert len(done["lifecycleHookDetails"]) == 2


def test_canary_defaults_are_five_percent(acct):
    # CanaryConfiguration defaults: canaryPercent 5.0, canaryBakeTimeInMinutes 10
    arn = start(acct, {"strategy": "CANARY", "bakeTimeInMinutes": 0})
    dep = wait_weight(acct, arn, 5.0)
    assert weights(dep) == (5.0, 95.0)
    acct.ecs.stop_service_deployment(serviceDeploymentArn=arn)


def test_canary_of_100_percent_is_a_single_step(acct):
    arn = start(acct, canary(100.0, 5, lifecycleHooks=[pause_at(PRE)]))
    walk_paused_steps(acct, arn, 1)
    done = acct.wait_status(arn, "SUCCESSFUL")
    assert len(done["lifecycleHookDetails"]) == 1


def test_post_production_traffic_shift_runs_once_after_the_last_step(acct):
    arn = start(acct, linear(50.0, 0, lifecycleHooks=[pause_at("POST_PRODUCTION_TRAFFIC_SHIFT")]))
    dep, hook = acct.wait_paused(arn)
    assert weights(dep) == (100.0, 0.0)
    acct.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"])
    assert len(acct.wait_status(arn, "SUCCESSFUL")["lifecycleHookDetails"]) == 1


# ---------------------------------------------------------------------- rollback at a step
def test_continue_with_rollback_at_step_2_returns_all_traffic(acct):
    arn = start(acct, linear(25.0, 0, lifecycleHooks=[pause_at(PRE)]))
    walk_paused_steps(acct, arn, 1)
    dep, hook = acct.wait_paused(arn)
    assert weights(dep) == (25.0, 75.0), "step 1 shifted; about to shift step 2"
    acct.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"], action="ROLLBACK")
    done = acct.wait_status(arn, "ROLLBACK_SUCCESSFUL")
    assert weights(done) == (0.0, 100.0)
    assert "PRE_PRODUCTION_TRAFFIC_SHIFT" in done["rollback"]["reason"]


def test_stop_service_deployment_during_step_2_rolls_back(acct):
    arn = start(acct, linear(25.0, 2))  # 2 configured minutes = 1 s per step bake
    wait_weight(acct, arn, 50.0)
    acct.ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    done = acct.wait_status(arn, "ROLLBACK_SUCCESSFUL")
    assert weights(done) == (0.0, 100.0)
    assert acct.describe_service()["taskDefinition"].endswith(":1")


def test_alarm_fault_at_step_2_rolls_back_there(acct):
    config = linear(25.0, 0, lifecycleHooks=[pause_at(PRE)],
                    alarms={"alarmNames": ["errors"], "enable": True, "rollback": True})
    tds = acct.service(deployment_configuration=config)
    acct.fault(kind="alarm", service="svc", at="PRODUCTION_TRAFFIC_SHIFT", step=2)
    acct.update(taskDefinition=tds["v2"])
    arn = acct.newest()["serviceDeploymentArn"]
    walk_paused_steps(acct, arn, 1)
    dep, hook = acct.wait_paused(arn)
    assert dep["status"] == "IN_PROGRESS" and weights(dep)[0] == 25.0, "step 1 passed the alarm"
    acct.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"])
    done = acct.wait_status(arn, "ROLLBACK_SUCCESSFUL")
    assert done["alarms"]["triggeredAlarmNames"] == ["errors"]
    assert weights(done) == (0.0, 100.0)


def test_fault_step_must_be_a_step_number(acct):
    status, _ = acct.control("POST", "/_plugin/faults", {"kind": "alarm", "at": "PRODUCTION_TRAFFIC_SHIFT", "step": 0})
    assert status == 400


# ---------------------------------------------------------------------- listener rule weights
def _elb(acct) -> dict[str, str]:
    ec2, elb = acct.client("ec2"), acct.client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"]["SubnetId"]
               for i, z in ((1, "a"), (2, "b"))]
    lb = elb.create_load_balancer(Name="lb", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    tg = {c: elb.create_target_group(Name=c, Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
          for c in ("blue", "green")}
    listener = elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80,
                                   DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}])
    forward = [{"Type": "forward", "ForwardConfig": {"TargetGroups": [
        {"TargetGroupArn": tg["blue"], "Weight": 100}, {"TargetGroupArn": tg["green"], "Weight": 0}]}}]
    rule = elb.create_rule(ListenerArn=listener["Listeners"][0]["ListenerArn"], Priority=1,
                           Conditions=[{"Field": "path-pattern", "Values": ["/*"]}], Actions=forward)
    return {**tg, "rule": rule["Rules"][0]["RuleArn"]}


def _rule_weights(acct, rule: str, tg: dict[str, str]) -> dict[str, int]:
    [r] = acct.client("elbv2").describe_rules(RuleArns=[rule])["Rules"]
    by_arn = {t["TargetGroupArn"]: t["Weight"] for t in r["Actions"][0]["ForwardConfig"]["TargetGroups"]}
    return {"blue": by_arn[tg["blue"]], "green": by_arn[tg["green"]]}


def test_the_production_listener_rule_weights_follow_each_step(acct):
    res = _elb(acct)
    lbs = [{"targetGroupArn": res["blue"], "containerName": "app", "containerPort": 80,
            "advancedConfiguration": {"alternateTargetGroupArn": res["green"], "productionListenerRule": res["rule"],
                                      "roleArn": "arn:aws:iam::123456789012:role/ecs-lb"}}]
    arn = start(acct, linear(25.0, 0, lifecycleHooks=[pause_at(PRE)]), load_balancers=lbs)
    walk_paused_steps(acct, arn, 2)
    dep, hook = acct.wait_paused(arn)
    assert weights(dep) == (50.0, 50.0)
    assert _rule_weights(acct, res["rule"], res) == {"blue": 50, "green": 50}
    acct.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"], action="ROLLBACK")
    acct.wait_status(arn, "ROLLBACK_SUCCESSFUL")
    assert _rule_weights(acct, res["rule"], res) == {"blue": 100, "green": 0}


def test_a_listener_as_production_listener_rule_gets_the_weights_on_its_default_action(acct):
    # AdvancedConfiguration.productionListenerRule: a listener rule (ALB) or a listener (NLB)
    res = _elb(acct)
    elb = acct.client("elbv2")
    [rule] = elb.describe_rules(RuleArns=[res["rule"]])["Rules"]
    listener = res["rule"].replace(":listener-rule/", ":listener/").rsplit("/", 1)[0]
    elb.modify_listener(ListenerArn=listener, DefaultActions=rule["Actions"])
    lbs = [{"targetGroupArn": res["blue"], "containerName": "app", "containerPort": 80,
            "advancedConfiguration": {"alternateTargetGroupArn": res["green"], "productionListenerRule": listener,
                                      "roleArn": "arn:aws:iam::123456789012:role/ecs-lb"}}]
    arn = start(acct, canary(10.0, 0, lifecycleHooks=[pause_at(PRE)]), load_balancers=lbs)
    walk_paused_steps(acct, arn, 1)
    acct.wait_paused(arn)
    [listener_desc] = elb.describe_listeners(ListenerArns=[listener])["Listeners"]
    tgs = {t["TargetGroupArn"]: t["Weight"] for t in listener_desc["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]}
    assert tgs == {res["blue"]: 90, res["green"]: 10}
    assert _rule_weights(acct, res["rule"], res) == {"blue": 100, "green": 0}, "the rule was not named"


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "section,field,value",
    [
        ("linearConfiguration", "stepPercent", 2.9),
        ("linearConfiguration", "stepPercent", 100.1),
        ("linearConfiguration", "stepPercent", 10.05),
        ("linearConfiguration", "stepBakeTimeInMinutes", -1),
        ("linearConfiguration", "stepBakeTimeInMinutes", 1441),
        ("canaryConfiguration", "canaryPercent", 0.0),
        ("canaryConfiguration", "canaryPercent", 0.05),
        ("canaryConfiguration", "canaryPercent", 100.5),
        ("canaryConfiguration", "canaryBakeTimeInMinutes", 1441),
    ],
)
def test_out_of_range_step_values_are_refused(acct, section, field, value):
    strategy = "LINEAR" if section == "linearConfiguration" else "CANARY"
    config = {"strategy": strategy, "bakeTimeInMinutes": 0, section: {field: value}}
    with pytest.raises(ClientError) as err:
        acct.service(deployment_configuration=config)
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    assert field in err.value.response["Error"]["Message"]
    assert acct.ecs.list_services(cluster="c")["serviceArns"] == [], "nothing was created"


@pytest.mark.parametrize(
    "config",
    [linear(3.0, 0), linear(100.0, 1440), linear(33.3, 6), canary(0.1, 0), canary(100.0, 1440)],
)
def test_in_range_step_values_are_accepted(acct, config):
    acct.service(deployment_configuration=config)


def test_update_with_a_bad_step_changes_nothing(acct):
    tds = acct.service(deployment_configuration=linear(25.0, 0))
    with pytest.raises(ClientError) as err:
        acct.update(taskDefinition=tds["v2"], deploymentConfiguration=linear(1.0, 0))
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    assert len(acct.deployments()) == 1
    assert acct.describe_service()["taskDefinition"] == tds["v1"]


# ---------------------------------------------------------------------- knobs
@pytest.mark.parametrize("mode", ["ignore", "reject"])
def test_knob_strategy_configuration_mismatch(acct, mode):
    acct.config(strategy_configuration_mismatch=mode)
    config = {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "canaryConfiguration": {"canaryPercent": 10.0}}
    if mode == "ignore":
        tds = acct.service(deployment_configuration=config)
        acct.update(taskDefinition=tds["v2"])
        done = acct.wait_status(acct.newest()["serviceDeploymentArn"], "SUCCESSFUL")
        assert done["targetServiceRevision"]["requestedProductionTrafficWeight"] == 100.0
        return
    with pytest.raises(ClientError) as err:
        acct.service(deployment_configuration=config)
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    assert "only valid when the deployment strategy is CANARY" in err.value.response["Error"]["Message"]


def test_knob_strategy_configuration_mismatch_judges_what_the_request_sends(acct):
    # a LINEAR service switched to BLUE_GREEN by a partial update keeps its (now unused)
    # linearConfiguration under "merge"; that is not refused, only a sent one is
    acct.config(strategy_configuration_mismatch="reject")
    tds = acct.service(deployment_configuration=linear(50.0, 0))
    acct.update(taskDefinition=tds["v2"], deploymentConfiguration={"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0})
    assert acct.describe_service()["deploymentConfiguration"]["strategy"] == "BLUE_GREEN"


@pytest.mark.parametrize("mode", ["events", "status_reason", "none"])
def test_knob_step_reporting(acct, mode):
    acct.config(step_reporting=mode)
    arn = start(acct, linear(50.0, 0, lifecycleHooks=[pause_at(PRE)]))
    walk_paused_steps(acct, arn, 1)
    dep, _ = acct.wait_paused(arn)
    events = [e["message"] for e in acct.describe_service()["events"]]
    in_events = any("step 1 of 2" in m for m in events)
    in_reason = "step 1 of 2" in dep["statusReason"]
    assert (in_events, in_reason) == {"events": (True, False), "status_reason": (False, True), "none": (False, False)}[mode]


@pytest.mark.parametrize("timing", ["after_bake", "before_bake"])
def test_knob_step_hook_timing(acct, timing):
    # 50 % steps, a 2-minute (1 s) bake between them
    acct.config(step_hook_timing=timing)
    arn = start(acct, linear(50.0, 2, lifecycleHooks=[pause_at(PRE)]))
    walk_paused_steps(acct, arn, 1)
    t0 = time.time()
    dep, hook = acct.wait_paused(arn)
    paused_after = time.time() - t0
    assert weights(dep) == (50.0, 50.0)
    acct.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"])
    t1 = time.time()
    wait_weight(acct, arn, 100.0)
    shifted_after = time.time() - t1
    if timing == "after_bake":
        assert paused_after >= 0.9 and shifted_after < 0.9, (paused_after, shifted_after)
    else:
        assert paused_after < 0.9 and shifted_after >= 0.9, (paused_after, shifted_after)
        assert acct.describe(arn)["status"] in ("IN_PROGRESS", "SUCCESSFUL")


def test_knob_paused_stage_previous_at_a_later_step_is_the_traffic_shift(acct):
    acct.config(paused_stage="previous")
    arn = start(acct, linear(50.0, 0, lifecycleHooks=[pause_at(PRE)]))
    seen = walk_paused_steps(acct, arn, 2)
    assert [s for _, _, s in seen] == ["POST_TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"]


def test_profile_strict_hides_the_step_and_refuses_mismatches(acct):
    snap = acct.config(profile="strict")
    assert snap["step_reporting"] == "none"
    assert snap["strategy_configuration_mismatch"] == "reject"
    assert snap["step_hook_timing"] == "after_bake"
