"""The service-deployment state machine: statuses, stages, hooks, Stop/Continue, target groups.
Sources: docs/moto-plugin.md."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from conftest import BLUE_GREEN, pause_at

TG_BLUE = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/blue/1111111111111111"
TG_GREEN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/green/2222222222222222"


def _lb() -> list[dict]:
    return [
        {
            "targetGroupArn": TG_BLUE,
            "containerName": "app",
            "containerPort": 80,
            "advancedConfiguration": {
                "alternateTargetGroupArn": TG_GREEN,
                "productionListenerRule": "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/lb/1/2/3",
                "roleArn": "arn:aws:iam::123456789012:role/ecs-lb",
            },
        }
    ]


def test_create_service_records_a_successful_first_deployment(acct):
    acct.service()
    [dep] = acct.deployments()
    assert dep["status"] == "SUCCESSFUL"


def test_rolling_deployment_succeeds_and_moves_the_service(acct):
    acct.config(stage_seconds=1.0)
    tds = acct.service()
    acct.update(taskDefinition=tds["v2"])
    dep = acct.newest()
    assert dep["status"] in ("PENDING", "IN_PROGRESS")
    done = acct.wait_status(dep["serviceDeploymentArn"], "SUCCESSFUL")
    assert done["targetServiceRevision"]["runningTaskCount"] == 2
    svc = acct.describe_service()
    assert svc["taskDefinition"] == tds["v2"]
    assert svc["deployments"][0]["rolloutState"] == "COMPLETED"


def test_update_without_a_change_starts_no_deployment(acct):
    tds = acct.service()
    acct.update(taskDefinition=tds["v1"], desiredCount=3)
    assert len(acct.deployments()) == 1


def test_force_new_deployment_starts_one(acct):
    acct.service()
    acct.update(forceNewDeployment=True)
    assert len(acct.deployments()) == 2


def test_blue_green_passes_every_stage_in_order(acct):
    hooks = [pause_at(s) for s in ("PRE_SCALE_UP", "POST_SCALE_UP", "POST_TEST_TRAFFIC_SHIFT",
                                   "PRE_PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT")]
    tds = acct.service(deployment_configuration={**BLUE_GREEN, "lifecycleHooks": hooks})
    acct.update(taskDefinition=tds["v2"])
    arn = acct.newest()["serviceDeploymentArn"]
    seen = []
    for _ in hooks:
        dep, hook = acct.wait_paused(arn)
        seen.append(dep.get("lifecycleStage"))
        acct.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"], action="CONTINUE")
    acct.wait_status(arn, "SUCCESSFUL")
    assert seen == ["PRE_SCALE_UP", "POST_SCALE_UP", "POST_TEST_TRAFFIC_SHIFT",
                    "PRE_PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT"]


def test_pause_at_pre_production_traffic_shift_comes_before_production_traffic(acct):
    tds = acct.service(deployment_configuration={**BLUE_GREEN, "lifecycleHooks": [pause_at("PRE_PRODUCTION_TRAFFIC_SHIFT")]})
    acct.update(taskDefinition=tds["v2"])
    arn = acct.newest()["serviceDeploymentArn"]
    dep, _ = acct.wait_paused(arn)
    assert dep["targetServiceRevision"]["requestedTestTrafficWeight"] == 100.0
    assert dep["targetServiceRevision"]["requestedProductionTrafficWeight"] == 0.0


def test_two_pause_hooks_at_one_stage_both_must_be_continued(acct):
    tds = acct.service(deployment_configuration={**BLUE_GREEN, "lifecycleHooks": [pause_at("POST_SCALE_UP"), pause_at("POST_SCALE_UP")]})
    acct.update(taskDefinition=tds["v2"])
    arn = acct.newest()["serviceDeploymentArn"]
    acct.wait_paused(arn)
    hooks = [h for h in acct.describe(arn)["lifecycleHookDetails"] if h["status"] == "AWAITING_ACTION"]
    assert len(hooks) == 2
    acct.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hooks[0]["hookId"])
    dep = acct.describe(arn)
    assert dep["status"] == "IN_PROGRESS" and dep["lifecycleStage"] == "POST_SCALE_UP"
    acct.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hooks[1]["hookId"])
    acct.wait_status(arn, "SUCCESSFUL")


def test_hook_details_carry_the_model_fields(acct):
    tds = acct.service(deployment_configuration={**BLUE_GREEN, "lifecycleHooks": [pause_at("POST_SCALE_UP", minutes=7, action="CONTINUE")]})
    acct.update(taskDefinition=tds["v2"])
    _, hook = acct.wait_paused(acct.newest()["serviceDeploymentArn"])
    assert hook["hookId"].startswith("ecs-pause-")
    assert hook["targetType"] == "PAUSE"
    assert hook["timeoutAction"] == "CONTINUE"
    assert "targetArn" not in hook  # "For PAUSE hooks, this field is not set."


def test_hook_timeout_rolls_back_by_default(acct):
    hook = {"targetType": "PAUSE", "lifecycleStages": ["POST_SCALE_UP"], "timeoutConfiguration": {"timeoutInMinutes": 1}}
    tds = acct.service(deployment_configuration={**BLUE_GREEN, "lifecycleHooks": [hook]})
    acct.update(taskDefinition=tds["v2"])
    arn = acct.newest()["serviceDeploymentArn"]
    done = acct.wait_status(arn, "ROLLBACK_SUCCESSFUL")
    assert [h["status"] for h in done["lifecycleHookDetails"]] == ["TIMED_OUT"]
    assert acct.describe_service()["taskDefinition"] == tds["v1"]


def test_hook_timeout_with_continue_proceeds(acct):
    tds = acct.service(deployment_configuration={**BLUE_GREEN, "lifecycleHooks": [pause_at("POST_SCALE_UP", minutes=1, action="CONTINUE")]})
    acct.update(taskDefinition=tds["v2"])
    done = acct.wait_status(acct.newest()["serviceDeploymentArn"], "SUCCESSFUL")
    assert [h["status"] for h in done["lifecycleHookDetails"]] == ["TIMED_OUT"]


def test_continue_with_rollback_rolls_back(acct):
    tds = acct.service(deployment_configuration={**BLUE_GREEN, "lifecycleHooks": [pause_at("POST_TEST_TRAFFIC_SHIFT")]})
    acct.update(taskDefinition=tds["v2"])
    arn = acct.newest()["serviceDeploymentArn"]
    _, hook = acct.wait_paused(arn)
    acct.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"], action="ROLLBACK")
    done = acct.wait_status(arn, "ROLLBACK_SUCCESSFUL")
    assert done["rollback"]["serviceRevisionArn"] == done["sourceServiceRevisions"][0]["arn"]
    assert acct.describe_service()["taskDefinition"] == tds["v1"]


def test_continue_errors(acct):
    tds = acct.service(deployment_configuration={**BLUE_GREEN, "lifecycleHooks": [pause_at("POST_SCALE_UP")]})
    acct.update(taskDefinition=tds["v2"])
    arn = acct.newest()["serviceDeploymentArn"]
    _, hook = acct.wait_paused(arn)
    with pytest.raises(ClientError) as err:
        acct.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId="ecs-pause-nope")
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    acct.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"])
    with pytest.raises(ClientError) as err:
        acct.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"])
    assert err.value.response["Error"]["Code"] == "ClientException"
    with pytest.raises(ClientError) as err:
        acct.ecs.continue_service_deployment(serviceDeploymentArn=arn + "x", hookId=hook["hookId"])
    assert err.value.response["Error"]["Code"] == "ServiceDeploymentNotFoundException"


def test_stop_in_progress_rolls_back(acct):
    acct.config(stage_seconds=5)
    tds = acct.service()
    acct.update(taskDefinition=tds["v2"])
    arn = acct.newest()["serviceDeploymentArn"]
    acct.wait_status(arn, "IN_PROGRESS")
    acct.ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    assert acct.describe(arn)["status"] in ("ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL")
    acct.wait_status(arn, "ROLLBACK_SUCCESSFUL")


def test_stop_pending_rolls_back(acct):
    acct.config(pending_seconds=30, rollback_seconds=30)
    tds = acct.service()
    acct.update(taskDefinition=tds["v2"])
    arn = acct.newest()["serviceDeploymentArn"]
    assert acct.describe(arn)["status"] == "PENDING"
    acct.ecs.stop_service_deployment(serviceDeploymentArn=arn)
    assert acct.describe(arn)["status"] in ("ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS")


def test_stop_is_accepted_while_a_rollback_runs_and_changes_nothing(acct):
    acct.config(rollback_seconds=30, stage_seconds=30)
    tds = acct.service()
    acct.update(taskDefinition=tds["v2"])
    arn = acct.newest()["serviceDeploymentArn"]
    acct.ecs.stop_service_deployment(serviceDeploymentArn=arn)
    acct.wait_status(arn, "ROLLBACK_IN_PROGRESS")
    acct.ecs.stop_service_deployment(serviceDeploymentArn=arn)  # "continues the rollback operation"
    assert acct.describe(arn)["status"] == "ROLLBACK_IN_PROGRESS"


def test_stop_is_accepted_on_stop_requested(acct):
    acct.config(pending_seconds=30)
    tds = acct.service()
    acct.update(taskDefinition=tds["v2"])
    arn = acct.newest()["serviceDeploymentArn"]
    acct.ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ABORT")
    dep = acct.describe(arn)
    if dep["status"] == "STOP_REQUESTED":
        acct.ecs.stop_service_deployment(serviceDeploymentArn=arn)  # "continues to stop"
    acct.wait_status(arn, "STOPPED")


def test_stop_of_a_finished_deployment_is_a_conflict(acct):
    tds = acct.service()
    acct.update(taskDefinition=tds["v2"])
    arn = acct.newest()["serviceDeploymentArn"]
    acct.wait_status(arn, "SUCCESSFUL")
    with pytest.raises(ClientError) as err:
        acct.ecs.stop_service_deployment(serviceDeploymentArn=arn)
    assert err.value.response["Error"]["Code"] == "ConflictException"


def test_unknown_deployment(acct):
    acct.service()
    arn = acct.newest()["serviceDeploymentArn"] + "nope"
    with pytest.raises(ClientError) as err:
        acct.ecs.stop_service_deployment(serviceDeploymentArn=arn)
    assert err.value.response["Error"]["Code"] == "ServiceDeploymentNotFoundException"
    out = acct.ecs.describe_service_deployments(serviceDeploymentArns=[arn])
    assert out["failures"] == [{"arn": arn, "reason": "MISSING"}]


def test_successful_blue_green_swaps_the_target_groups(acct):
    tds = acct.service(deployment_configuration=BLUE_GREEN, load_balancers=_lb())
    acct.update(taskDefinition=tds["v2"])
    acct.wait_status(acct.newest()["serviceDeploymentArn"], "SUCCESSFUL")
    [lb] = acct.describe_service()["loadBalancers"]
    assert lb["targetGroupArn"] == TG_GREEN
    assert lb["advancedConfiguration"]["alternateTargetGroupArn"] == TG_BLUE
    acct.update(taskDefinition=tds["v3"])
    acct.wait_status(acct.newest()["serviceDeploymentArn"], "SUCCESSFUL")
    [lb] = acct.describe_service()["loadBalancers"]
    assert lb["targetGroupArn"] == TG_BLUE, "the pair alternates"


def test_rolled_back_blue_green_keeps_the_target_groups(acct):
    tds = acct.service(deployment_configuration={**BLUE_GREEN, "lifecycleHooks": [pause_at("POST_SCALE_UP")]}, load_balancers=_lb())
    acct.update(taskDefinition=tds["v2"])
    arn = acct.newest()["serviceDeploymentArn"]
    acct.wait_paused(arn)
    acct.ecs.stop_service_deployment(serviceDeploymentArn=arn)
    acct.wait_status(arn, "ROLLBACK_SUCCESSFUL")
    assert acct.describe_service()["loadBalancers"][0]["targetGroupArn"] == TG_BLUE


def test_a_newer_update_replaces_the_deployment_in_flight(acct):
    acct.config(stage_seconds=5)
    tds = acct.service()
    acct.update(taskDefinition=tds["v2"])
    first = acct.newest()["serviceDeploymentArn"]
    acct.update(taskDefinition=tds["v3"])
    old = acct.describe(first)
    assert old["status"] == "STOPPED"
    assert old["statusReason"] == "Replaced by a new service deployment."
    second = acct.newest()
    assert second["serviceDeploymentArn"] != first
    # the rollback target stays the last revision that completed, not the replaced one
    acct.ecs.stop_service_deployment(serviceDeploymentArn=second["serviceDeploymentArn"])
    acct.config(stage_seconds=0.05)
    acct.wait_status(second["serviceDeploymentArn"], "ROLLBACK_SUCCESSFUL")
    assert acct.describe_service()["taskDefinition"] == tds["v1"]


def test_list_filters(acct):
    import time as _t

    tds = acct.service()
    t0 = _t.time()
    acct.update(taskDefinition=tds["v2"])
    assert len(acct.deployments(createdAt={"after": t0})) == 1
    assert [d["status"] for d in acct.deployments(status=["SUCCESSFUL"])][-1] == "SUCCESSFUL"
    with pytest.raises(ClientError) as err:
        acct.deployments(maxResults=101)
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    page = acct.ecs.list_service_deployments(cluster="c", service="svc", maxResults=1)
    assert len(page["serviceDeployments"]) == 1 and page["nextToken"]


def test_service_revisions_carry_the_image_digests_ecr_resolved(acct):
    """ServiceRevision.containerImages: ECS resolves an image tag to its digest when it makes the
    revision (model: ContainerImage), and keeps it when the tag moves later."""
    ecr = acct.client("ecr")
    ecr.create_repository(repositoryName="app")
    manifest = '{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "config": {"digest": "sha256:%s", "size": 1, "mediaType": "application/vnd.docker.container.image.v1+json"}, "layers": []}'
    first = ecr.put_image(repositoryName="app", imageTag="v1", imageManifest=manifest % ("1" * 64))["image"]
    image = f"{acct.id}.dkr.ecr.us-east-1.amazonaws.com/app:v1"
    acct.ecs.create_cluster(clusterName="c")
    td = acct.register("svc", image)
    acct.ecs.create_service(cluster="c", serviceName="svc", taskDefinition=td, desiredCount=1)
    dep = acct.describe(acct.newest()["serviceDeploymentArn"])
    rev_arn = dep["targetServiceRevision"]["arn"]
    # The tag moves to another image: the revision keeps the digest it resolved.
    ecr.batch_delete_image(repositoryName="app", imageIds=[{"imageTag": "v1"}])
    ecr.put_image(repositoryName="app", imageTag="v1", imageManifest=manifest % ("2" * 64))
    rev = acct.ecs.describe_service_revisions(serviceRevisionArns=[rev_arn])["serviceRevisions"][0]
    assert rev["containerImages"] == [
        {"containerName": "app", "image": image, "imageDigest": first["imageId"]["imageDigest"]}
    ]
