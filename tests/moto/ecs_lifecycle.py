"""ECS service-deployment lifecycle plugin for moto (test harness, not product code).

moto 5.2 has no List/Describe/Stop/ContinueServiceDeployment and never advances a deployment.
This module adds them, with a service-deployment state machine that follows the AWS docs closely
enough for the deployer's release flow to be tested end to end. Every place where it simplifies
AWS is listed in docs/moto-plugin.md.

How it runs: `install()` patches moto's ECS response class before the server starts. State is
advanced lazily: before every ECS action of an account, all of that account's deployments are
brought up to "now" on a virtual clock (each transition happens at the time it was due, not at
the time somebody looked), so results do not depend on how often a client polls.

Control endpoint (plain JSON over HTTP on the moto port; `account` = the 12-digit access key id):
  POST   /_plugin/config  {"account", "stage_seconds", "minute_seconds", "run_task_seconds",
                           "rollback_seconds"}             timings for that account
  POST   /_plugin/faults  {"account", "kind", ...}         arm a fault (see FAULT_KINDS)
  DELETE /_plugin/faults?account=A                         disarm all faults of an account
  GET    /_plugin/state?account=A                          deployments, tasks, faults (debugging)
"""

from __future__ import annotations

import json
import os
import secrets
import string
import threading
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.ecs import models as ecs_models
from moto.ecs.models import ecs_backends
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.moto_api import state_manager

BLUE_GREEN_STAGES = [
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
    "BAKE_TIME",
    "CLEAN_UP",
]
ROLLING_STAGES = ["SCALE_UP", "BAKE_TIME", "CLEAN_UP"]
TERMINAL = {"SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"}
FAULT_KINDS = {
    # the circuit breaker counts failed tasks of the new revision at stage `at` (default SCALE_UP)
    "circuit_breaker",
    # a CloudWatch alarm of the deployment goes to ALARM at stage `at` (default BAKE_TIME)
    "alarm",
    # the next one-off task(s) (RunTask) of `family` (or any) exit with `exit_code` (default 1)
    "fail_task",
    # the next `count` ECS requests answer ThrottlingException (HTTP 400)
    "throttle",
    # the next `count` ECS requests answer HTTP 503 ServerException
    "server_error",
}

DEFAULTS = {
    "stage_seconds": float(os.environ.get("ECS_PLUGIN_STAGE_SECONDS", "0.3")),
    # how long one configured minute (bakeTimeInMinutes, hook timeoutInMinutes) lasts
    "minute_seconds": float(os.environ.get("ECS_PLUGIN_MINUTE_SECONDS", "2.0")),
    "run_task_seconds": float(os.environ.get("ECS_PLUGIN_RUN_TASK_SECONDS", "0.5")),
    "rollback_seconds": float(os.environ.get("ECS_PLUGIN_ROLLBACK_SECONDS", "0.5")),
}

_LOCK = threading.RLock()
_config: dict[str, dict[str, float]] = {}
_faults: dict[str, list[dict[str, Any]]] = {}
# (account, region) -> {arn: Deployment}
_deployments: dict[tuple[str, str], dict[str, "Deployment"]] = {}
# (account, region) -> {service arn: [service revision dict]}
_revisions: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
# task arn -> {"due": epoch seconds, "exit_code": int, "reason": str}
_tasks: dict[str, dict[str, Any]] = {}

TASK_MODEL = "ecs::task::lifecycle-plugin"


def _cfg(account: str, key: str) -> float:
    return float(_config.get(account, {}).get(key, DEFAULTS[key]))


def _dt(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=timezone.utc)


def _rand_id(n: int = 21) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


class DeploymentNotFound(ServiceException):
    code = "ServiceDeploymentNotFoundException"
    message = "The service deployment does not exist."


class ClientError(ServiceException):
    code = "ClientException"


class ConflictError(ServiceException):
    code = "ConflictException"


class InvalidParameter(ServiceException):
    code = "InvalidParameterException"


def _take_fault(account: str, kind: str, **match: Any) -> dict[str, Any] | None:
    """Removes and returns the first armed fault of `kind` whose fields match (None matches all)."""
    for fault in _faults.get(account, []):
        if fault["kind"] != kind:
            continue
        if all(fault.get(k) in (None, "*", v) for k, v in match.items()):
            fault["remaining"] = fault.get("remaining", 1) - 1
            if fault["remaining"] <= 0:
                _faults[account].remove(fault)
            return fault
    return None


def _peek_fault(account: str, kind: str, **match: Any) -> dict[str, Any] | None:
    for fault in _faults.get(account, []):
        if fault["kind"] == kind and all(
            fault.get(k) in (None, "*", v) for k, v in match.items()
        ):
            return fault
    return None


class Deployment:
    def __init__(self, backend, service, source: list[dict], target: dict, now: float):
        self.account = backend.account_id
        self.region = backend.region_name
        self.backend = backend
        self.service = service
        self.arn = (
            f"arn:aws:ecs:{self.region}:{self.account}:service-deployment/"
            f"{service.cluster_name}/{service.name}/{_rand_id()}"
        )
        self.config = json.loads(json.dumps(getattr(service, "deployment_configuration", None) or {}))
        self.strategy = self.config.get("strategy") or "ROLLING"
        self.stages = list(BLUE_GREEN_STAGES if self.strategy == "BLUE_GREEN" else ROLLING_STAGES)
        if len([r for r in source if r.get("active", True)]) <= 1 and "RECONCILE_SERVICE" in self.stages:
            # RECONCILE_SERVICE only happens with more than one ACTIVE revision (AWS docs).
            self.stages.remove("RECONCILE_SERVICE")
        self.source = source
        self.target = target
        self.created = now
        self.started = None
        self.finished = None
        self.stopped = None
        self.updated = now
        self.clock = now  # virtual time of the last transition
        self.status = "PENDING"
        self.reason = "ECS deployment created."
        self.stage_index = -1
        self.stage_entered = now
        self.hooks: list[dict[str, Any]] = []
        self.rollback: dict[str, Any] | None = None
        cb = self.config.get("deploymentCircuitBreaker") or {}
        self.cb = {
            "status": "MONITORING" if cb.get("enable") else "DISABLED",
            "failureCount": 0,
            "threshold": 3,
        }
        self.cb_rollback = bool(cb.get("rollback"))
        self.cb_was_disabled = not cb.get("enable")
        alarms = self.config.get("alarms") or {}
        self.alarms = {
            "status": "MONITORING" if alarms.get("enable") else "DISABLED",
            "alarmNames": list(alarms.get("alarmNames") or []),
            "triggeredAlarmNames": [],
        }
        self.alarms_rollback = bool(alarms.get("rollback"))
        self.test_weight = 0.0
        self.prod_weight = 0.0

    # ------------------------------------------------------------------ helpers
    @property
    def stage(self) -> str | None:
        if 0 <= self.stage_index < len(self.stages):
            return self.stages[self.stage_index]
        return None

    def _event(self, message: str, at: float) -> None:
        self.service.events.insert(
            0, {"id": _rand_id(36), "createdAt": _dt(at), "message": f"(service {self.service.name}) {message}"}
        )
        del self.service.events[100:]

    def _pause_hook_for(self, stage: str) -> dict[str, Any] | None:
        if self.strategy != "BLUE_GREEN":
            return None
        for hook in self.config.get("lifecycleHooks") or []:
            if hook.get("targetType") == "PAUSE" and stage in (hook.get("lifecycleStages") or []):
                return hook
        return None

    def awaiting_hook(self) -> dict[str, Any] | None:
        for h in self.hooks:
            if h["status"] == "AWAITING_ACTION":
                return h
        return None

    def _set_service_td(self, arn: str, rollout: str, reason: str, at: float) -> None:
        self.service.task_definition = arn
        for dep in self.service.deployments[:1]:
            dep["taskDefinition"] = arn
            dep["rolloutState"] = rollout
            dep["rolloutStateReason"] = reason
            dep["updatedAt"] = _dt(at)

    # ------------------------------------------------------------------ transitions
    def _enter_stage(self, index: int, at: float) -> None:
        self.stage_index = index
        self.stage_entered = at
        self.updated = at
        stage = self.stage
        if stage is None:
            return
        if stage == "TEST_TRAFFIC_SHIFT":
            self.test_weight = 100.0
        if stage == "PRODUCTION_TRAFFIC_SHIFT":
            self.prod_weight = 100.0
        hook = self._pause_hook_for(stage)
        if hook is not None:
            timeout = hook.get("timeoutConfiguration") or {}
            minutes = float(timeout.get("timeoutInMinutes") or 1440)
            self.hooks.append(
                {
                    "hookId": "ecs-pause-" + _rand_id(43),
                    "targetType": "PAUSE",
                    "status": "AWAITING_ACTION",
                    "expiresAt": at + minutes * _cfg(self.account, "minute_seconds"),
                    "timeoutAction": timeout.get("action") or "ROLLBACK",
                    "_stage": stage,
                }
            )
            self._event(f"deployment {self.arn.rsplit('/', 1)[-1]} paused at {stage}, awaiting action.", at)

    def _stage_duration(self, stage: str) -> float:
        if stage == "BAKE_TIME":
            minutes = float(self.config.get("bakeTimeInMinutes") or 0)
            return minutes * _cfg(self.account, "minute_seconds")
        return _cfg(self.account, "stage_seconds")

    def start_rollback(self, reason: str, at: float, by_ecs: bool = True) -> None:
        self.status = "ROLLBACK_REQUESTED"
        self.reason = reason
        self.updated = at
        self.clock = at
        source_arn = self.source[0]["arn"] if self.source else None
        self.rollback = {"reason": reason, "startedAt": at, "serviceRevisionArn": source_arn}
        self._event(f"rolling back deployment: {reason}", at)

    def _fail_without_rollback(self, reason: str, at: float) -> None:
        self.status = "STOPPED"
        self.reason = reason
        self.stopped = at
        self.finished = at
        self.updated = at
        self._set_service_td(self.target["taskDefinition"], "FAILED", reason, at)
        self._event(f"deployment failed: {reason}", at)

    def _check_faults(self, now: float) -> bool:
        stage = self.stage
        if stage is None:
            return False
        name = self.service.name
        cb = _peek_fault(self.account, "circuit_breaker", service=name)
        if cb and self._reached(cb.get("at") or "SCALE_UP"):
            _take_fault(self.account, "circuit_breaker", service=name)
            at = self.clock
            self.cb["status"] = "TRIGGERED"
            self.cb["failureCount"] = self.cb["threshold"]
            reason = (
                "ECS deployment circuit breaker: tasks failed to start "
                f"({self.cb['failureCount']} failed tasks; threshold {self.cb['threshold']})."
            )
            for _ in range(self.cb["threshold"]):
                self._event(
                    f"task {_rand_id(32).lower()} stopped: Essential container in task exited (exit code 1)", at
                )
            # Configured without rollback, ECS only stops the deployment; unconfigured (the fault
            # forced it anyway), roll back as the deployer's services always configure it.
            if self.cb_rollback or self.cb_was_disabled:
                self.start_rollback(reason, at)
            else:
                self._fail_without_rollback(reason, at)
            return True
        alarm = _peek_fault(self.account, "alarm", service=name)
        if alarm and self._reached(alarm.get("at") or "BAKE_TIME"):
            _take_fault(self.account, "alarm", service=name)
            at = self.clock
            names = alarm.get("alarm") or (self.alarms["alarmNames"][:1] or ["fault-injected-alarm"])[0]
            self.alarms["status"] = "TRIGGERED"
            self.alarms["triggeredAlarmNames"] = [names]
            reason = f"CloudWatch alarm {names} went into ALARM state during the deployment."
            if self.alarms_rollback or not self.alarms["alarmNames"]:
                self.start_rollback(reason, at)
            else:
                self._fail_without_rollback(reason, at)
            return True
        return False

    def _reached(self, stage: str) -> bool:
        if stage not in self.stages:
            # e.g. BAKE_TIME asked of a strategy without it: fire at the last stage
            return self.stage_index >= len(self.stages) - 1
        return self.stage_index >= self.stages.index(stage)

    def step(self, now: float) -> bool:
        """One transition if one is due by `now`; returns whether anything changed."""
        if self.status == "PENDING":
            self.status = "IN_PROGRESS"
            self.reason = "ECS deployment in progress."
            self.started = self.clock
            self._enter_stage(0, self.clock)
            return True
        if self.status == "IN_PROGRESS":
            if self._check_faults(now):
                return True
            hook = self.awaiting_hook()
            if hook is not None:
                if now >= hook["expiresAt"]:
                    at = hook["expiresAt"]
                    hook["status"] = "TIMED_OUT"
                    self.clock = at
                    if hook["timeoutAction"] == "ROLLBACK":
                        self.start_rollback(
                            f"lifecycle hook {hook['hookId']} at {hook['_stage']} timed out (timeout action ROLLBACK).",
                            at,
                        )
                    else:
                        self._enter_stage(self.stage_index + 1, at)
                    return True
                return False
            due = self.stage_entered + self._stage_duration(self.stage or "")
            if now < due:
                return False
            self.clock = due
            if self.stage_index + 1 >= len(self.stages):
                self.status = "SUCCESSFUL"
                self.reason = "ECS deployment completed."
                self.finished = due
                self.updated = due
                self.stage_index = len(self.stages) - 1
                self._set_service_td(self.target["taskDefinition"], "COMPLETED", "deployment completed", due)
                self._event("has reached a steady state.", due)
                self.service.deployments[:] = self.service.deployments[:1]
                for rev in self.source:
                    rev["active"] = False
                return True
            self._enter_stage(self.stage_index + 1, due)
            return True
        if self.status == "ROLLBACK_REQUESTED":
            self.status = "ROLLBACK_IN_PROGRESS"
            self.updated = self.clock
            # Traffic goes back to the source revision right away; the service's taskDefinition
            # flips back to it, as DescribeServices shows after an AWS rollback.
            if self.source:
                self._set_service_td(self.source[0]["taskDefinition"], "IN_PROGRESS", self.reason, self.clock)
            self.test_weight = 0.0
            self.prod_weight = 0.0
            return True
        if self.status == "ROLLBACK_IN_PROGRESS":
            due = self.clock + _cfg(self.account, "rollback_seconds")
            if now < due:
                return False
            self.status = "ROLLBACK_SUCCESSFUL"
            self.finished = due
            self.updated = due
            self.clock = due
            if self.source:
                self._set_service_td(self.source[0]["taskDefinition"], "COMPLETED", "rollback completed", due)
            self.target["active"] = False
            self._event("rollback completed; the service runs the previous revision.", due)
            return True
        if self.status == "STOP_REQUESTED":
            self.status = "STOPPED"
            self.stopped = self.clock
            self.finished = self.clock
            self.updated = self.clock
            return True
        return False

    # ------------------------------------------------------------------ output
    def _revision_summary(self, rev: dict[str, Any], is_target: bool) -> dict[str, Any]:
        desired = int(self.service.desired_count or 0)
        if is_target:
            scaled = self.stage_index >= self.stages.index("SCALE_UP") + 1 if "SCALE_UP" in self.stages else True
            running = desired if (scaled and self.status not in ("ROLLBACK_SUCCESSFUL",)) else 0
            if self.status == "SUCCESSFUL":
                running = desired
            test, prod = self.test_weight, self.prod_weight
            if self.status == "SUCCESSFUL":
                test = prod = 100.0
        else:
            running = 0 if self.status == "SUCCESSFUL" else desired
            test = 100.0 - self.test_weight
            prod = 100.0 - self.prod_weight
            if self.status == "SUCCESSFUL":
                test = prod = 0.0
        return {
            "arn": rev["arn"],
            "requestedTaskCount": desired if running else 0,
            "runningTaskCount": running,
            "pendingTaskCount": 0,
            "requestedTestTrafficWeight": test,
            "requestedProductionTrafficWeight": prod,
        }

    def brief(self) -> dict[str, Any]:
        return {
            "serviceDeploymentArn": self.arn,
            "serviceArn": self.service.arn,
            "clusterArn": self.service.cluster_arn,
            "startedAt": _dt(self.started),
            "createdAt": _dt(self.created),
            "finishedAt": _dt(self.finished),
            "targetServiceRevisionArn": self.target["arn"],
            "status": self.status,
            "statusReason": self.reason,
        }

    def full(self) -> dict[str, Any]:
        out = {
            "serviceDeploymentArn": self.arn,
            "serviceArn": self.service.arn,
            "clusterArn": self.service.cluster_arn,
            "createdAt": _dt(self.created),
            "startedAt": _dt(self.started),
            "finishedAt": _dt(self.finished),
            "stoppedAt": _dt(self.stopped),
            "updatedAt": _dt(self.updated),
            "sourceServiceRevisions": [self._revision_summary(r, False) for r in self.source],
            "targetServiceRevision": self._revision_summary(self.target, True),
            "status": self.status,
            "statusReason": self.reason,
            "lifecycleStage": self.stage,
            "lifecycleHookDetails": [
                {
                    "hookId": h["hookId"],
                    "targetType": h["targetType"],
                    "status": h["status"],
                    "expiresAt": _dt(h["expiresAt"]),
                    "timeoutAction": h["timeoutAction"],
                }
                for h in self.hooks
            ],
            "deploymentConfiguration": self.config or None,
            "deploymentCircuitBreaker": self.cb,
            "alarms": self.alarms,
        }
        if self.rollback:
            out["rollback"] = {
                "reason": self.rollback["reason"],
                "startedAt": _dt(self.rollback["startedAt"]),
                "serviceRevisionArn": self.rollback["serviceRevisionArn"],
            }
        return {k: v for k, v in out.items() if v is not None}

    def debug(self) -> dict[str, Any]:
        return {
            "arn": self.arn,
            "service": self.service.name,
            "status": self.status,
            "reason": self.reason,
            "stage": self.stage,
            "hooks": [{k: v for k, v in h.items()} for h in self.hooks],
            "target": self.target,
            "source": self.source,
        }


# ---------------------------------------------------------------------- backend glue
def _key(backend) -> tuple[str, str]:
    return (backend.account_id, backend.region_name)


def _advance(backend, now: float | None = None) -> None:
    now = time.time() if now is None else now
    for dep in list(_deployments.get(_key(backend), {}).values()):
        guard = 0
        while dep.status not in TERMINAL and dep.step(now):
            guard += 1
            if guard > 1000:
                break


def _new_revision(backend, service, task_definition_arn: str, now: float) -> dict[str, Any]:
    revs = _revisions.setdefault(_key(backend), {}).setdefault(service.arn, [])
    rev = {
        "arn": f"arn:aws:ecs:{backend.region_name}:{backend.account_id}:service-revision/"
        f"{service.cluster_name}/{service.name}/{len(revs) + 1}",
        "taskDefinition": task_definition_arn,
        "active": True,
        "created": now,
    }
    revs.append(rev)
    return rev


def _task_def_arn(backend, name_or_arn: str | None) -> str | None:
    if not name_or_arn:
        return None
    return backend.describe_task_definition(name_or_arn).arn


def _service_deployments(backend, service) -> list[Deployment]:
    return [d for d in _deployments.get(_key(backend), {}).values() if d.service is service]


def _start_deployment(backend, service, previous_td: str | None, now: float) -> Deployment:
    # A newer deployment supersedes one still in flight (simplified: it is STOPPED).
    for old in _service_deployments(backend, service):
        if old.status not in TERMINAL:
            old.status = "STOPPED"
            old.reason = "Superseded by a newer service deployment."
            old.stopped = old.finished = old.updated = now
            for h in old.hooks:
                if h["status"] == "AWAITING_ACTION":
                    h["status"] = "FAILED"
    revs = _revisions.get(_key(backend), {}).get(service.arn, [])
    source = [r for r in revs if r.get("active")][-1:]
    if not source and previous_td:
        source = [_new_revision(backend, service, previous_td, now)]
    target = _new_revision(backend, service, service.task_definition, now)
    dep = Deployment(backend, service, source, target, now)
    _deployments.setdefault(_key(backend), {})[dep.arn] = dep
    service.deployments[:] = [
        {
            **(service.deployments[0] if service.deployments else {}),
            "id": f"ecs-svc/{secrets.randbelow(10**18)}",
            "status": "PRIMARY",
            "taskDefinition": service.task_definition,
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": "ECS deployment in progress.",
            "createdAt": _dt(now),
            "updatedAt": _dt(now),
            "desiredCount": service.desired_count,
        }
    ] + [
        {**d, "status": "ACTIVE"} for d in service.deployments[:1]
    ]
    dep._event(f"has started a {dep.strategy} deployment {dep.arn.rsplit('/', 1)[-1]}.", now)
    return dep


# ---------------------------------------------------------------------- response methods
_orig_call_action = EC2ContainerServiceResponse.call_action
_orig_create_service = EC2ContainerServiceResponse.create_service
_orig_update_service = EC2ContainerServiceResponse.update_service
_orig_run_task = EC2ContainerServiceResponse.run_task
_orig_describe_tasks = EC2ContainerServiceResponse.describe_tasks


def _call_action(self):
    account = self.current_account
    with _LOCK:
        for kind, status, body_type, message in (
            ("throttle", 400, "ThrottlingException", "Rate exceeded"),
            ("server_error", 503, "ServerException", "Service unavailable (injected fault)"),
        ):
            if _take_fault(account, kind) is not None:
                body = json.dumps({"__type": body_type, "message": message})
                return status, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": body_type}, body
        backend = ecs_backends[account][self.region]
        _advance(backend)
        return _orig_call_action(self)


def _create_service(self):
    result = _orig_create_service(self)
    service = result.result["service"] if isinstance(result, ActionResult) else None
    if service is None:
        return result
    # moto drops deploymentConfiguration on create (tools.md); keep it as AWS does.
    config = self._get_param("deploymentConfiguration")
    if config:
        service.deployment_configuration = config
    now = time.time()
    if service.task_definition:
        service.task_definition = _task_def_arn(self.ecs_backend, service.task_definition)
        # CreateService starts the service's first deployment; with nothing to shift from, it
        # completes at once (a simplification).
        dep = _start_deployment(self.ecs_backend, service, None, now)
        dep.source = []
        dep.status = "SUCCESSFUL"
        dep.reason = "ECS deployment completed."
        dep.started = dep.finished = dep.updated = now
        dep.stage_index = len(dep.stages) - 1
        dep._set_service_td(service.task_definition, "COMPLETED", "deployment completed", now)
        service.deployments[:] = service.deployments[:1]
    return result


def _update_service(self):
    backend = self.ecs_backend
    name = (self._get_param("service") or "").split("/")[-1]
    cluster = self._get_param("cluster", "default")
    service = backend._get_service(cluster, name)
    previous = service.task_definition
    requested = self._get_param("taskDefinition")
    force = bool(self._get_param("forceNewDeployment"))
    result = _orig_update_service(self)
    if requested:
        service.task_definition = _task_def_arn(backend, requested)
    changed = bool(requested) and service.task_definition != previous
    if (changed or force) and (service.deployment_controller or {}).get("type", "ECS") == "ECS":
        _start_deployment(backend, service, previous, time.time())
    return result


def _run_task(self):
    result = _orig_run_task(self)
    now = time.time()
    for task in result.result.get("tasks", []):
        family = task.task_definition_arn.split("/")[-1].split(":")[0]
        fault = _take_fault(self.current_account, "fail_task", family=family)
        task.model_name = TASK_MODEL
        task.status = "RUNNING"
        task.last_status = "RUNNING"
        for c in task.containers:
            c.last_status = "RUNNING"
            c.exitCode = None
            _fix_container_types(c)
        _tasks[task.task_arn] = {
            "due": now + _cfg(self.current_account, "run_task_seconds"),
            "exit_code": int(fault.get("exit_code", 1)) if fault else 0,
            "reason": (fault or {}).get("reason") or "Essential container in task exited",
        }
    return result


def _fix_container_types(c) -> None:
    # The API's Container.cpu/memory are strings; moto emits integers, which strict SDKs reject.
    for attr in ("cpu", "memory"):
        v = getattr(c, attr, None)
        if v is not None and not isinstance(v, str):
            setattr(c, attr, str(v))


def _describe_tasks(self):
    result = _orig_describe_tasks(self)
    now = time.time()
    for task in result.result.get("tasks", []):
        for c in task.containers:
            _fix_container_types(c)
        info = _tasks.get(task.task_arn)
        if info is None:
            continue
        if now >= info["due"] and task.desired_status != "STOPPED":
            task.status = "STOPPED"
            task.desired_status = "STOPPED"
            task.stopped_reason = info["reason"]
            task.stop_code = "EssentialContainerExited"
            task.stopped_at = _dt(info["due"])
            for c in task.containers:
                c.last_status = "STOPPED"
                c.exitCode = info["exit_code"]
                c.exit_code = info["exit_code"]
                c.reason = None if info["exit_code"] == 0 else f"exit code {info['exit_code']}"
    return result


def _find(backend, arn: str) -> Deployment:
    dep = _deployments.get(_key(backend), {}).get(arn)
    if dep is None:
        raise DeploymentNotFound()
    return dep


def list_service_deployments(self):
    backend = self.ecs_backend
    service = backend._get_service(self._get_param("cluster", "default"), self._get_param("service"))
    statuses = self._get_param("status") or []
    deps = sorted(_service_deployments(backend, service), key=lambda d: d.created, reverse=True)
    if statuses:
        deps = [d for d in deps if d.status in statuses]
    created = self._get_param("createdAt") or {}
    # timestamps arrive as epoch seconds in the JSON protocol
    if created.get("after") is not None:
        deps = [d for d in deps if d.created >= float(created["after"])]
    if created.get("before") is not None:
        deps = [d for d in deps if d.created <= float(created["before"])]
    start = int(self._get_param("nextToken") or 0)
    size = int(self._get_param("maxResults") or 20)
    page = deps[start : start + size]
    out: dict[str, Any] = {"serviceDeployments": [d.brief() for d in page]}
    if start + size < len(deps):
        out["nextToken"] = str(start + size)
    return ActionResult(out)


def describe_service_deployments(self):
    backend = self.ecs_backend
    arns = self._get_param("serviceDeploymentArns") or []
    if not arns or len(arns) > 20:
        raise InvalidParameter("serviceDeploymentArns must name between 1 and 20 service deployments.")
    found, failures = [], []
    for arn in arns:
        dep = _deployments.get(_key(backend), {}).get(arn)
        if dep is None:
            failures.append({"arn": arn, "reason": "MISSING"})
        else:
            found.append(dep.full())
    return ActionResult({"serviceDeployments": found, "failures": failures})


def stop_service_deployment(self):
    backend = self.ecs_backend
    dep = _find(backend, self._get_param("serviceDeploymentArn"))
    stop_type = self._get_param("stopType") or "ROLLBACK"
    if dep.status not in ("PENDING", "IN_PROGRESS"):
        raise ConflictError(
            f"The service deployment is {dep.status}; only a PENDING or IN_PROGRESS deployment can be stopped."
        )
    now = time.time()
    dep.clock = max(dep.clock, now)
    for h in dep.hooks:
        if h["status"] == "AWAITING_ACTION":
            h["status"] = "FAILED"
    if stop_type == "ROLLBACK":
        dep.start_rollback("Service deployment rolled back by StopServiceDeployment.", now, by_ecs=False)
    else:
        dep.status = "STOP_REQUESTED"
        dep.reason = "Service deployment stopped by StopServiceDeployment."
    return ActionResult({"serviceDeploymentArn": dep.arn})


def continue_service_deployment(self):
    backend = self.ecs_backend
    dep = _find(backend, self._get_param("serviceDeploymentArn"))
    hook_id = self._get_param("hookId")
    action = self._get_param("action") or "CONTINUE"
    if dep.status != "IN_PROGRESS":
        raise ClientError(f"The service deployment is {dep.status}; it must be IN_PROGRESS to continue.")
    hook = next((h for h in dep.hooks if h["hookId"] == hook_id), None)
    if hook is None:
        raise InvalidParameter(f"The hook {hook_id} does not belong to this service deployment.")
    if hook["status"] != "AWAITING_ACTION":
        raise ClientError(f"The hook {hook_id} is {hook['status']}, not AWAITING_ACTION.")
    now = time.time()
    dep.clock = now
    hook["status"] = "SUCCEEDED"
    if action == "ROLLBACK":
        dep.start_rollback(f"Rolled back by ContinueServiceDeployment at {hook['_stage']}.", now, by_ecs=False)
    else:
        dep._enter_stage(dep.stage_index + 1, now)
        if dep.stage is None:
            dep.stage_index = len(dep.stages) - 1
            dep.stage_entered = now - dep._stage_duration(dep.stages[-1])
    return ActionResult({"serviceDeploymentArn": dep.arn})


def describe_service_revisions(self):
    """DescribeServiceRevisions (model: DescribeServiceRevisionsRequest/Response, ServiceRevision):
    what an UpdateService caller reads to tell which task definition a deployment targets."""
    backend = self.ecs_backend
    arns = self._get_param("serviceRevisionArns") or []
    if not arns or len(arns) > 20:
        raise InvalidParameter("serviceRevisionArns must name between 1 and 20 service revisions.")
    by_arn = {}
    for revs in _revisions.get(_key(backend), {}).values():
        for rev in revs:
            by_arn[rev["arn"]] = rev
    found, failures = [], []
    for arn in arns:
        rev = by_arn.get(arn)
        if rev is None:
            failures.append({"arn": arn, "reason": "MISSING"})
            continue
        service_arn = arn.replace(":service-revision/", ":service/").rsplit("/", 1)[0]
        cluster_arn = service_arn.replace(":service/", ":cluster/").rsplit("/", 1)[0]
        found.append(
            {
                "serviceRevisionArn": arn,
                "serviceArn": service_arn,
                "clusterArn": cluster_arn,
                "taskDefinition": rev["taskDefinition"],
                "createdAt": _dt(rev.get("created")),
            }
        )
    return ActionResult({"serviceRevisions": [{k: v for k, v in r.items() if v is not None} for r in found], "failures": failures})


# ---------------------------------------------------------------------- control endpoint
def _control(environ, start_response):
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "")
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    body: dict[str, Any] = {}
    if method in ("POST", "PUT"):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return _reply(start_response, 400, {"error": "body must be JSON"})
    account = str(body.get("account") or query.get("account") or "")
    with _LOCK:
        if path == "/_plugin/config" and method == "POST":
            if not account:
                return _reply(start_response, 400, {"error": "account is required"})
            unknown = set(body) - set(DEFAULTS) - {"account"}
            if unknown:
                return _reply(start_response, 400, {"error": f"unknown keys {sorted(unknown)}"})
            _config.setdefault(account, {}).update({k: float(v) for k, v in body.items() if k in DEFAULTS})
            return _reply(start_response, 200, {"account": account, **{k: _cfg(account, k) for k in DEFAULTS}})
        if path == "/_plugin/faults" and method == "POST":
            kind = body.get("kind")
            if not account or kind not in FAULT_KINDS:
                return _reply(start_response, 400, {"error": f"account and kind (one of {sorted(FAULT_KINDS)}) are required"})
            fault = {k: v for k, v in body.items() if k != "account"}
            fault["remaining"] = int(body.get("count") or 1)
            _faults.setdefault(account, []).append(fault)
            return _reply(start_response, 200, {"armed": fault})
        if path == "/_plugin/faults" and method == "DELETE":
            _faults.pop(account, None)
            return _reply(start_response, 200, {"cleared": account})
        if path == "/_plugin/state" and method == "GET":
            deps = []
            for (acct, region), by_arn in _deployments.items():
                if acct == account:
                    _advance(ecs_backends[acct][region])
                    deps += [d.debug() for d in by_arn.values()]
            return _reply(
                start_response,
                200,
                {"deployments": deps, "faults": _faults.get(account, []), "config": {k: _cfg(account, k) for k in DEFAULTS}},
            )
    return _reply(start_response, 404, {"error": f"no control route {method} {path}"})


def _reply(start_response, status: int, payload: Any):
    data = json.dumps(payload, default=str).encode()
    reasons = {200: "OK", 400: "Bad Request", 404: "Not Found"}
    start_response(f"{status} {reasons.get(status, 'OK')}", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


_orig_calc = ecs_models.EC2ContainerServiceBackend._calculate_task_resource_requirements


def _calc_resources(task_definition) -> dict[str, Any]:
    # Fargate containers may leave memory to the task level; moto then adds None to an int.
    try:
        return _orig_calc(task_definition)
    except TypeError:
        out: dict[str, Any] = {"CPU": 0, "MEMORY": 0, "PORTS": [], "PORTS_UDP": []}
        for cd in task_definition.container_definitions:
            out["CPU"] += int(cd.get("cpu") or 0)
            out["MEMORY"] += int(cd.get("memory") or cd.get("memoryReservation") or 0)
        return out


def install() -> None:
    """Patches moto's ECS responses and the server's WSGI app. Call before the server starts."""
    ecs_models.EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(_calc_resources)
    state_manager.register_default_transition(TASK_MODEL, {"progression": "manual", "times": 10**9})
    EC2ContainerServiceResponse.call_action = _call_action
    EC2ContainerServiceResponse.create_service = _create_service
    EC2ContainerServiceResponse.update_service = _update_service
    EC2ContainerServiceResponse.run_task = _run_task
    EC2ContainerServiceResponse.describe_tasks = _describe_tasks
    EC2ContainerServiceResponse.list_service_deployments = list_service_deployments
    EC2ContainerServiceResponse.describe_service_deployments = describe_service_deployments
    EC2ContainerServiceResponse.stop_service_deployment = stop_service_deployment
    EC2ContainerServiceResponse.continue_service_deployment = continue_service_deployment
    EC2ContainerServiceResponse.describe_service_revisions = describe_service_revisions

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.__call__

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith("/_plugin/"):
            return _control(environ, start_response)
        return original(self, environ, start_response)

    DomainDispatcherApplication.__call__ = __call__
