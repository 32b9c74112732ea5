"""CreateService/UpdateService checks AWS makes and moto does not (test harness, not product code).

Each rule cites its source in docs/moto-plugin.md. Messages follow AWS's wording where it is
known (the CODE_DEPLOY one is quoted by many users); elsewhere they say plainly what is wrong.
"""

from __future__ import annotations

from typing import Any

from moto.core.exceptions import ServiceException


class InvalidParameter(ServiceException):
    code = "InvalidParameterException"


# DeploymentLifecycleHookStage (the values a hook may name), in the order a deployment passes them
HOOK_STAGES = [
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
]
# DeploymentLifecycleHook.lifecycleStages: "PAUSE hooks cannot be configured at
# TEST_TRAFFIC_SHIFT or PRODUCTION_TRAFFIC_SHIFT stages. These stages are only valid for
# AWS_LAMBDA hooks." (aws-sdk-ecs 1.157 types/_deployment_lifecycle_hook.rs, API reference)
PAUSE_FORBIDDEN_STAGES = ("TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT")
HOOK_TARGET_TYPES = ("AWS_LAMBDA", "PAUSE")
HOOK_ACTIONS = ("ROLLBACK", "CONTINUE")
# DeploymentLifecycleHookDuration: min 1, max 20160
TIMEOUT_MIN, TIMEOUT_MAX = 1, 20160
STRATEGIES = ("ROLLING", "BLUE_GREEN", "LINEAR", "CANARY")
# LinearConfiguration / CanaryConfiguration (model doc strings): (field, low, high, default)
# percentages are "multiples of 0.1"; bake times are whole minutes "0 to 1440 minutes (24 hours)"
LINEAR_PERCENT = ("stepPercent", 3.0, 100.0, 10.0)
LINEAR_BAKE = ("stepBakeTimeInMinutes", 0, 1440, 6)
CANARY_PERCENT = ("canaryPercent", 0.1, 100.0, 5.0)
CANARY_BAKE = ("canaryBakeTimeInMinutes", 0, 1440, 10)
STRATEGY_CONFIGURATIONS = {"LINEAR": "linearConfiguration", "CANARY": "canaryConfiguration"}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _check_percent(where: str, section: dict[str, Any], spec: tuple) -> None:
    name, low, high, _ = spec
    if name not in section or section[name] is None:
        return
    v = _number(section[name])
    tenths = None if v is None else v * 10
    if v is None or not (low - 1e-9 <= v <= high + 1e-9) or abs(tenths - round(tenths)) > 1e-6:
        raise InvalidParameter(
            f"{where}.{name} must be a multiple of 0.1 from {low} to {high} (got {section[name]!r})."
        )


def _check_minutes(where: str, section: dict[str, Any], spec: tuple) -> None:
    name, low, high, _ = spec
    if name not in section or section[name] is None:
        return
    v = _number(section[name])
    if v is None or v != int(v) or not (low <= v <= high):
        raise InvalidParameter(f"{where}.{name} must be a whole number of minutes from {low} to {high} (got {section[name]!r}).")


def validate_strategy_configuration(config: dict[str, Any], sent: dict[str, Any] | None, mismatch: str) -> None:
    """linearConfiguration / canaryConfiguration: value ranges per the model; `mismatch`
    ("ignore" | "reject", a knob) says whether a request that sends one of them with another
    strategy is refused ("Only valid when the deployment strategy is LINEAR/CANARY")."""
    strategy = config.get("strategy") or "ROLLING"
    for key, percent, bake in (
        ("linearConfiguration", LINEAR_PERCENT, LINEAR_BAKE),
        ("canaryConfiguration", CANARY_PERCENT, CANARY_BAKE),
    ):
        section = config.get(key)
        if section is None:
            continue
        where = f"deploymentConfiguration.{key}"
        if not isinstance(section, dict):
            raise InvalidParameter(f"{where} must be a structure.")
        _check_percent(where, section, percent)
        _check_minutes(where, section, bake)
        if mismatch == "reject" and (sent or {}).get(key) is not None and STRATEGY_CONFIGURATIONS.get(strategy) != key:
            wanted = next(s for s, k in STRATEGY_CONFIGURATIONS.items() if k == key)
            raise InvalidParameter(
                f"{where} is only valid when the deployment strategy is {wanted} (the strategy is {strategy})."
            )


def validate_deployment_configuration(
    config: dict[str, Any] | None,
    lambda_role_required: bool = True,
    sent: dict[str, Any] | None = None,
    mismatch: str = "ignore",
) -> None:
    """Raises InvalidParameterException for a deploymentConfiguration AWS rejects.
    `lambda_role_required`: whether an AWS_LAMBDA hook without roleArn is refused (the model
    requires hookTargetArn; it does not say roleArn is required, so this is a knob)."""
    if not config:
        return
    strategy = config.get("strategy") or "ROLLING"
    if strategy not in STRATEGIES:
        raise InvalidParameter(f"deploymentConfiguration.strategy {strategy!r} is not one of {', '.join(STRATEGIES)}.")
    # DeploymentConfiguration.bakeTimeInMinutes: "You must provide this parameter when you use
    # the BLUE_GREEN deployment strategy."
    if strategy == "BLUE_GREEN" and config.get("bakeTimeInMinutes") is None:
        raise InvalidParameter("bakeTimeInMinutes must be provided when the deployment strategy is BLUE_GREEN.")
    validate_strategy_configuration(config, config if sent is None else sent, mismatch)
    for i, hook in enumerate(config.get("lifecycleHooks") or []):
        where = f"deploymentConfiguration.lifecycleHooks[{i}]"
        target_type = hook.get("targetType") or "AWS_LAMBDA"  # the model's default
        if target_type not in HOOK_TARGET_TYPES:
            raise InvalidParameter(f"{where}.targetType {target_type!r} is not one of {', '.join(HOOK_TARGET_TYPES)}.")
        stages = hook.get("lifecycleStages") or []
        if not stages:
            raise InvalidParameter(f"{where}.lifecycleStages must name at least one lifecycle stage.")
        for stage in stages:
            if stage not in HOOK_STAGES:
                raise InvalidParameter(f"{where}.lifecycleStages: {stage!r} is not a valid lifecycle hook stage.")
            if target_type == "PAUSE" and stage in PAUSE_FORBIDDEN_STAGES:
                raise InvalidParameter(
                    f"{where}: PAUSE hooks cannot be configured at TEST_TRAFFIC_SHIFT or "
                    f"PRODUCTION_TRAFFIC_SHIFT stages ({stage}). These stages are only valid for AWS_LAMBDA hooks."
                )
        if target_type == "AWS_LAMBDA":
            if not hook.get("hookTargetArn"):
                raise InvalidParameter(f"{where}: hookTargetArn must be provided for an AWS_LAMBDA lifecycle hook.")
            if lambda_role_required and not hook.get("roleArn"):
                raise InvalidParameter(f"{where}: roleArn must be provided for an AWS_LAMBDA lifecycle hook.")
        timeout = hook.get("timeoutConfiguration") or {}
        minutes = timeout.get("timeoutInMinutes")
        if minutes is not None and not (TIMEOUT_MIN <= int(minutes) <= TIMEOUT_MAX):
            raise InvalidParameter(
                f"{where}.timeoutConfiguration.timeoutInMinutes must be between {TIMEOUT_MIN} and {TIMEOUT_MAX}."
            )
        action = timeout.get("action")
        if action is not None and action not in HOOK_ACTIONS:
            raise InvalidParameter(f"{where}.timeoutConfiguration.action {action!r} is not one of {', '.join(HOOK_ACTIONS)}.")


def validate_controller_update(controller_type: str, request: dict[str, Any]) -> None:
    """UpdateService on a service whose deployment controller is not ECS: AWS takes only some
    fields (UpdateService API reference); a task definition is refused with this message."""
    if controller_type == "ECS" or not request.get("taskDefinition"):
        return
    if controller_type == "CODE_DEPLOY":
        raise InvalidParameter(
            "Unable to update task definition on services with a CODE_DEPLOY deployment controller. "
            "Use AWS CodeDeploy to trigger a new deployment."
        )
    raise InvalidParameter(
        f"Unable to update task definition on services with a {controller_type} deployment controller. "
        "Use task sets (CreateTaskSet) to deploy a new task definition."
    )


def merge_deployment_configuration(current: dict[str, Any] | None, sent: dict[str, Any], mode: str) -> dict[str, Any]:
    """The deploymentConfiguration a service has after UpdateService sent `sent`: "merge" keeps
    each top-level field the request omits, "replace" takes the request as the whole."""
    if mode == "replace":
        return dict(sent)
    out = dict(current or {})
    out.update(sent)
    return out
