"""The service-deployment state machine of the ECS lifecycle plugin (test harness, not product code).

A Deployment follows ServiceDeploymentStatus and ServiceDeploymentLifecycleStage of the ECS
model. State advances lazily on a virtual clock: `advance()` brings every deployment of an
account up to "now", each transition at the time it was due, and runs the account's scheduled
events (ECS's own duplicate deployments) in time order between them. docs/moto-plugin.md lists
each behaviour with its AWS source.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import string
from datetime import datetime, timezone
from typing import Any

import lifecycle_config as cfg
from lifecycle_validation import CANARY_BAKE, CANARY_PERCENT, LINEAR_BAKE, LINEAR_PERCENT

# ServiceDeploymentLifecycleStage order, with the hook-only PRE_PRODUCTION_TRAFFIC_SHIFT
# (DeploymentLifecycleHookStage: "Occurs before production traffic shift") placed before
# PRODUCTION_TRAFFIC_SHIFT as the hook stage list orders it.
TRAFFIC_SHIFT_STAGES = [
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
    "BAKE_TIME",
    "CLEAN_UP",
]
# stages that are only a point where hooks run: no time is spent there unless a hook pauses
HOOK_ONLY_STAGES = {"PRE_PRODUCTION_TRAFFIC_SHIFT"}
ROLLING_STAGES = ["SCALE_UP", "BAKE_TIME", "CLEAN_UP"]
TRAFFIC_SHIFT_STRATEGIES = ("BLUE_GREEN", "LINEAR", "CANARY")
TERMINAL = {"SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"}
IN_FLIGHT = {"PENDING", "IN_PROGRESS"}
# StopServiceDeployment: the states the "Stopping Amazon ECS service deployments" page lists
STOPPABLE = {"PENDING", "IN_PROGRESS", "STOP_REQUESTED", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"}
REPLACED_REASON = "Replaced by a new service deployment."


def traffic_steps(strategy: str, config: dict[str, Any]) -> tuple[list[float], float]:
    """The production traffic weights of the new revision, one per traffic step, and the bake
    (in configured minutes) between steps. LINEAR: stepPercent per step until 100 %
    (LinearConfiguration: "shifts production traffic in equal percentage increments ... until
    100%"; default 10.0 % and 6 minutes; the last step is what is left, as the CloudFormation
    LinearConfiguration page counts steps: 11 % gives 9 bakes, so 10 steps). CANARY:
    canaryPercent, then the rest (CanaryConfiguration; default 5.0 % and 10 minutes).
    BLUE_GREEN: one step of 100 %."""
    if strategy == "LINEAR":
        section = config.get("linearConfiguration") or {}
        pct, bake = section.get(LINEAR_PERCENT[0]), section.get(LINEAR_BAKE[0])
        pct = LINEAR_PERCENT[3] if pct is None else float(pct)
        bake = LINEAR_BAKE[3] if bake is None else float(bake)
        tenths = max(1, round(pct * 10))
        steps = [min(1000, k * tenths) / 10 for k in range(1, math.ceil(1000 / tenths) + 1)]
        return steps, bake
    if strategy == "CANARY":
        section = config.get("canaryConfiguration") or {}
        pct, bake = section.get(CANARY_PERCENT[0]), section.get(CANARY_BAKE[0])
        pct = CANARY_PERCENT[3] if pct is None else float(pct)
        bake = CANARY_BAKE[3] if bake is None else float(bake)
        pct = round(pct, 1)
        return ([pct, 100.0] if pct < 100.0 else [100.0]), bake
    return [100.0], 0.0

# (account, region) -> {arn: Deployment}
_deployments: dict[tuple[str, str], dict[str, "Deployment"]] = {}
# (account, region) -> {service arn: [service revision dict]}
_revisions: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
# (account, region) -> {service arn: the revision of the last deployment that completed}
_stable: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
# (account, region) -> [{"due", "kind", ...}]: what ECS itself does later
_scheduled: dict[tuple[str, str], list[dict[str, Any]]] = {}


def dt(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=timezone.utc)


def rand_id(n: int = 21) -> str:
    alphabet = string.ascii_letters + string.digits + "-_"
    return "".join(secrets.choice(alphabet) for _ in range(n))


def key(backend) -> tuple[str, str]:
    return (backend.account_id, backend.region_name)


def controller_type(service) -> str:
    return (getattr(service, "deployment_controller", None) or {}).get("type", "ECS")


class Deployment:
    def __init__(self, backend, service, source: list[dict], rollback_to: dict | None, target: dict, now: float, origin: str):
        self.account = backend.account_id
        self.region = backend.region_name
        self.backend = backend
        self.service = service
        self.origin = origin  # create | update | duplicate | supersede
        self.arn = (
            f"arn:aws:ecs:{self.region}:{self.account}:service-deployment/"
            f"{service.cluster_name}/{service.name}/{rand_id()}"
        )
        self.config = json.loads(json.dumps(getattr(service, "deployment_configuration", None) or {}))
        self.strategy = self.config.get("strategy") or "ROLLING"
        self.stages = list(TRAFFIC_SHIFT_STAGES if self.strategy in TRAFFIC_SHIFT_STRATEGIES else ROLLING_STAGES)
        if len(source) <= 1 and "RECONCILE_SERVICE" in self.stages:
            # "RECONCILE_SERVICE: only happens when you start a new service deployment with more
            # than 1 service revision in an ACTIVE state" (ServiceDeploymentLifecycleStage)
            self.stages.remove("RECONCILE_SERVICE")
        self.source = source
        self.rollback_to = rollback_to or (source[0] if source else None)
        self.target = target
        self.created = now
        self.pending_due = now + cfg.seconds(self.account, "pending_seconds")
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
        self.rollback_fails: dict[str, Any] | None = None
        desired = int(service.desired_count or 0)
        cb = self.config.get("deploymentCircuitBreaker") or {}
        self.cb_enabled = bool(cb.get("enable"))
        self.cb_rollback = bool(cb.get("rollback"))
        # ServiceDeploymentCircuitBreaker.threshold: "minimum threshold of 3 and a maximum
        # threshold of 200 ... 0.5 * desired task count" (rounded up here; AWS does not say)
        self.cb = {
            "status": "MONITORING" if self.cb_enabled else "DISABLED",
            "failureCount": 0,
            "threshold": max(3, min(200, math.ceil(0.5 * desired))),
        }
        alarms = self.config.get("alarms") or {}
        self.alarms_enabled = bool(alarms.get("enable"))
        self.alarms_rollback = bool(alarms.get("rollback"))
        self.alarms = {
            "status": "MONITORING" if self.alarms_enabled else "DISABLED",
            "alarmNames": list(alarms.get("alarmNames") or []),
            "triggeredAlarmNames": [],
        }
        self.test_weight = 0.0
        self.prod_weight = 0.0
        # production traffic steps (LINEAR/CANARY; BLUE_GREEN has one): `traffic_step` is the index of the
        # step being prepared (PRE_PRODUCTION_TRAFFIC_SHIFT) or shifted; in PRODUCTION_TRAFFIC_SHIFT
        # `phase` is "shift" (stage_seconds), "bake" (the step bake after it) or "bake_before"
        # (step_hook_timing before_bake: the bake after the previous step's hooks)
        self.steps, self.step_bake_minutes = traffic_steps(self.strategy, self.config)
        self.traffic_step = 0
        self.phase: str | None = None
        self.hook_timing = cfg.get(self.account, "step_hook_timing")

    # ------------------------------------------------------------------ helpers
    @property
    def stage(self) -> str | None:
        if 0 <= self.stage_index < len(self.stages):
            return self.stages[self.stage_index]
        return None

    def short_id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]

    def event(self, message: str, at: float) -> None:
        self.service.events.insert(
            0, {"id": rand_id(36), "createdAt": dt(at), "message": f"(service {self.service.name}) {message}"}
        )
        del self.service.events[100:]

    def _pause_hooks_for(self, stage: str) -> list[dict[str, Any]]:
        if self.strategy not in TRAFFIC_SHIFT_STRATEGIES:
            return []
        return [
            h
            for h in self.config.get("lifecycleHooks") or []
            if h.get("targetType") == "PAUSE" and stage in (h.get("lifecycleStages") or [])
        ]

    def awaiting(self) -> list[dict[str, Any]]:
        return [h for h in self.hooks if h["status"] == "AWAITING_ACTION"]

    def fail_open_hooks(self) -> None:
        for h in self.awaiting():
            h["status"] = "FAILED"

    def set_service_td(self, arn: str, rollout: str, reason: str, at: float) -> None:
        self.service.task_definition = arn
        for dep in self.service.deployments[:1]:
            dep["taskDefinition"] = arn
            dep["rolloutState"] = rollout
            dep["rolloutStateReason"] = reason
            dep["updatedAt"] = dt(at)

    # ------------------------------------------------------------------ transitions
    def enter_stage(self, index: int, at: float) -> None:
        self.stage_index = index
        self.stage_entered = at
        self.updated = at
        stage = self.stage
        if stage is None:
            return
        if stage == "TEST_TRAFFIC_SHIFT":
            self.test_weight = 100.0
            apply_listener_weights(self)
        if stage == "PRODUCTION_TRAFFIC_SHIFT":
            if self.hook_timing == "before_bake" and self.traffic_step > 0 and self.step_bake_minutes > 0:
                self.phase = "bake_before"
            else:
                self.shift(at)
        for hook in self._pause_hooks_for(stage):
            timeout = hook.get("timeoutConfiguration") or {}
            # DeploymentLifecycleHookTimeoutConfiguration: default 1440 minutes, action ROLLBACK
            minutes = float(timeout.get("timeoutInMinutes") or 1440)
            self.hooks.append(
                {
                    "hookId": "ecs-pause-" + rand_id(43),
                    "targetType": "PAUSE",
                    "status": "AWAITING_ACTION",
                    "expiresAt": at + minutes * cfg.seconds(self.account, "minute_seconds"),
                    "timeoutAction": timeout.get("action") or "ROLLBACK",
                    "_stage": stage,
                    "_step": self.traffic_step + 1 if stage == "PRE_PRODUCTION_TRAFFIC_SHIFT" else None,
                }
            )
            where = stage
            if stage == "PRE_PRODUCTION_TRAFFIC_SHIFT" and len(self.steps) > 1 and cfg.get(self.account, "step_reporting") == "events":
                where = f"{stage} (before traffic step {self.traffic_step + 1} of {len(self.steps)})"
            self.event(f"deployment {self.short_id()} paused at {where}, awaiting action.", at)

    def shift(self, at: float) -> None:
        """One production traffic step: the new revision's weight goes to steps[step]."""
        self.phase = "shift"
        self.stage_entered = self.updated = at
        self.prod_weight = self.steps[self.traffic_step]
        apply_listener_weights(self)
        mode = cfg.get(self.account, "step_reporting")
        if len(self.steps) > 1 and mode != "none":
            text = f"production traffic step {self.traffic_step + 1} of {len(self.steps)} ({self.prod_weight:g}%)"
            if mode == "events":
                self.event(
                    f"deployment {self.short_id()} shifted {self.prod_weight:g}% of production traffic to the new "
                    f"service revision (step {self.traffic_step + 1} of {len(self.steps)}).",
                    at,
                )
            elif mode == "status_reason":
                self.reason = f"ECS deployment in progress: {text}."

    def step_bake_seconds(self) -> float:
        return self.step_bake_minutes * cfg.seconds(self.account, "minute_seconds")

    def stage_duration(self, stage: str) -> float:
        if stage in HOOK_ONLY_STAGES:
            return 0.0
        if stage == "PRODUCTION_TRAFFIC_SHIFT" and self.phase in ("bake", "bake_before"):
            return self.step_bake_seconds()
        if stage == "BAKE_TIME":
            minutes = float(self.config.get("bakeTimeInMinutes") or 0)
            return minutes * cfg.seconds(self.account, "minute_seconds")
        return cfg.seconds(self.account, "stage_seconds")

    def next_stage(self, at: float) -> None:
        """Leaves the current stage at `at` (after its hooks resolved). PRODUCTION_TRAFFIC_SHIFT
        of a LINEAR/CANARY deployment loops: each step not the last is followed by its bake and
        by the PRE_PRODUCTION_TRAFFIC_SHIFT hooks of the next step (in the order step_hook_timing
        says); the step bake is "not applied after reaching 100 percent traffic"."""
        if self.stage == "PRODUCTION_TRAFFIC_SHIFT":
            last = self.traffic_step >= len(self.steps) - 1
            if self.phase == "bake_before":
                self.shift(at)
                return
            if self.phase == "shift" and not last:
                if self.hook_timing == "after_bake" and self.step_bake_minutes > 0:
                    self.phase = "bake"
                    self.stage_entered = self.updated = at
                    return
                self.traffic_step += 1
                self.enter_stage(self.stages.index("PRE_PRODUCTION_TRAFFIC_SHIFT"), at)
                return
            if self.phase == "bake":
                self.traffic_step += 1
                self.enter_stage(self.stages.index("PRE_PRODUCTION_TRAFFIC_SHIFT"), at)
                return
        if self.stage_index + 1 >= len(self.stages):
            self.succeed(at)
        else:
            self.enter_stage(self.stage_index + 1, at)

    def succeed(self, at: float) -> None:
        self.status = "SUCCESSFUL"
        self.reason = "ECS deployment completed."
        self.finished = self.updated = self.clock = at
        self.stage_index = len(self.stages) - 1
        if self.cb_enabled:
            self.cb["status"] = "MONITORING_COMPLETE"
        if self.alarms_enabled:
            self.alarms["status"] = "MONITORING_COMPLETE"
        self.set_service_td(self.target["taskDefinition"], "COMPLETED", "ECS deployment completed.", at)
        self.event("has reached a steady state.", at)
        self.service.deployments[:] = self.service.deployments[:1]
        for rev in _revisions.get((self.account, self.region), {}).get(self.service.arn, []):
            rev["active"] = rev is self.target
        _stable.setdefault((self.account, self.region), {})[self.service.arn] = self.target
        if self.strategy in TRAFFIC_SHIFT_STRATEGIES:
            swap_target_groups(self.service)

    def start_rollback(self, reason: str, at: float) -> None:
        self.status = "ROLLBACK_REQUESTED"
        self.reason = reason
        self.updated = self.clock = at
        self.fail_open_hooks()
        arn = self.rollback_to["arn"] if self.rollback_to else None
        self.rollback = {"reason": reason, "startedAt": at, "serviceRevisionArn": arn}
        self.rollback_fails = cfg.take(self.account, "rollback_failed", service=self.service.name)
        self.event(f"rolling back deployment {self.short_id()}: {reason}", at)

    def stop(self, reason: str, at: float) -> None:
        self.status = "STOPPED"
        self.reason = reason
        self.stopped = self.finished = self.updated = self.clock = at
        self.fail_open_hooks()

    def fail_without_rollback(self, reason: str, at: float) -> None:
        self.stop(reason, at)
        self.set_service_td(self.target["taskDefinition"], "FAILED", reason, at)
        self.event(f"deployment failed: {reason}", at)

    def _reached(self, stage: str, step: int | None = None) -> bool:
        """Whether the deployment is at or past `stage` in the full stage order, so a fault aimed
        at a stage this strategy skips (POST_SCALE_UP of a ROLLING deployment) fires at the
        next stage it does have. `step` (1-based, for PRE_PRODUCTION_TRAFFIC_SHIFT and
        PRODUCTION_TRAFFIC_SHIFT): that traffic step's hooks ran / its traffic has shifted."""
        current = self.stage
        if current is None:
            return False
        order = TRAFFIC_SHIFT_STAGES
        if stage not in order:
            return False
        if order.index(current) < order.index(stage):
            return False
        if step is None or current not in ("PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"):
            return True
        n = self.traffic_step + 1
        if stage == "PRODUCTION_TRAFFIC_SHIFT" and self.phase == "bake_before":
            n -= 1
        if stage == "PRODUCTION_TRAFFIC_SHIFT" and current == "PRE_PRODUCTION_TRAFFIC_SHIFT":
            n -= 1  # preparing step n: step n-1 has shifted
        return n >= step

    def _check_faults(self) -> bool:
        """Faults due at the current stage; True when one changed the deployment."""
        name = self.service.name
        at = self.clock
        cb = cfg.peek(self.account, "circuit_breaker", service=name)
        if cb and self._reached(cb.get("at") or "SCALE_UP", cb.get("step")):
            cfg.take(self.account, "circuit_breaker", service=name)
            if not self.cb_enabled:
                cfg.record_ignored(self.account, cb, self.arn, "deploymentCircuitBreaker is not enabled on this deployment")
            else:
                self.cb["status"] = "TRIGGERED"
                self.cb["failureCount"] = self.cb["threshold"]
                reason = (
                    "ECS deployment circuit breaker: tasks failed to start "
                    f"({self.cb['failureCount']} failed tasks; threshold {self.cb['threshold']})."
                )
                for _ in range(self.cb["threshold"]):
                    self.event(f"task {rand_id(32).lower()} stopped: Essential container in task exited (exit code 1)", at)
                if self.cb_rollback:
                    self.start_rollback(reason, at)
                else:
                    self.fail_without_rollback(reason, at)
                return True
        alarm = cfg.peek(self.account, "alarm", service=name)
        if alarm and self._reached(alarm.get("at") or "BAKE_TIME", alarm.get("step")):
            cfg.take(self.account, "alarm", service=name)
            wanted = alarm.get("alarm") or (self.alarms["alarmNames"][:1] or [None])[0]
            if not self.alarms_enabled:
                cfg.record_ignored(self.account, alarm, self.arn, "alarms are not enabled on this deployment")
            elif wanted not in self.alarms["alarmNames"]:
                cfg.record_ignored(self.account, alarm, self.arn, f"alarm {wanted!r} is not one of the deployment's alarmNames")
            else:
                self.alarms["status"] = "TRIGGERED"
                self.alarms["triggeredAlarmNames"] = [wanted]
                reason = f"CloudWatch alarm {wanted} went into ALARM state during the deployment."
                if self.alarms_rollback:
                    self.start_rollback(reason, at)
                else:
                    self.fail_without_rollback(reason, at)
                return True
        sup = cfg.peek(self.account, "supersede", service=name)
        if sup and self.origin != "create" and self._reached(sup.get("at") or "POST_SCALE_UP"):
            cfg.take(self.account, "supersede", service=name)
            td = sup.get("task_definition")
            if td:
                self.service.task_definition = self.backend.describe_task_definition(td).arn
            else:
                self.service.task_definition = self.target["taskDefinition"]
            start(self.backend, self.service, at, origin="supersede")
            return True
        return False

    def step(self, now: float) -> bool:
        """One transition if one is due by `now`; returns whether anything changed."""
        if self.status == "PENDING":
            if now < self.pending_due:
                return False
            self.status = "IN_PROGRESS"
            self.reason = "ECS deployment in progress."
            self.clock = self.started = self.pending_due
            self.enter_stage(0, self.clock)
            return True
        if self.status == "IN_PROGRESS":
            if self._check_faults():
                return True
            waiting = self.awaiting()
            if waiting:
                first = min(waiting, key=lambda h: h["expiresAt"])
                if now < first["expiresAt"]:
                    return False
                at = first["expiresAt"]
                first["status"] = "TIMED_OUT"
                self.clock = self.updated = at
                if first["timeoutAction"] == "ROLLBACK":
                    self.start_rollback(
                        f"lifecycle hook {first['hookId']} at {first['_stage']} timed out (timeout action ROLLBACK).", at
                    )
                elif not self.awaiting():
                    self.next_stage(at)
                return True
            due = self.stage_entered + self.stage_duration(self.stage or "")
            if now < due:
                return False
            self.clock = due
            self.next_stage(due)
            return True
        if self.status == "ROLLBACK_REQUESTED":
            self.status = "ROLLBACK_IN_PROGRESS"
            self.updated = self.clock
            # Traffic goes back to the source revision; the service's taskDefinition flips back
            # to it, as DescribeServices shows after an AWS rollback.
            if self.rollback_to:
                self.set_service_td(self.rollback_to["taskDefinition"], "IN_PROGRESS", self.reason, self.clock)
            if not self.rollback_fails:
                self.test_weight = 0.0
                self.prod_weight = 0.0
                apply_listener_weights(self)
            return True
        if self.status == "ROLLBACK_IN_PROGRESS":
            due = self.clock + cfg.seconds(self.account, "rollback_seconds")
            if now < due:
                return False
            self.finished = self.updated = self.clock = due
            if self.rollback_fails:
                self.status = "ROLLBACK_FAILED"
                self.reason = (
                    "ECS deployment rollback failed: tasks of the source service revision "
                    f"{self.rollback['serviceRevisionArn']} failed to reach a steady state; both revisions keep running "
                    "and production traffic was not shifted back."
                )
                # mixed: the service asks for the source revision, the target's tasks still run
                for dep in self.service.deployments[:1]:
                    dep["rolloutState"] = "FAILED"
                    dep["rolloutStateReason"] = self.reason
                    dep["updatedAt"] = dt(due)
                self.event(f"rollback of deployment {self.short_id()} failed.", due)
                return True
            self.status = "ROLLBACK_SUCCESSFUL"
            if self.rollback_to:
                self.set_service_td(self.rollback_to["taskDefinition"], "COMPLETED", "rollback completed", due)
            self.target["active"] = False
            self.service.deployments[:] = self.service.deployments[:1]
            self.event("rollback completed; the service runs the previous revision.", due)
            return True
        if self.status == "STOP_REQUESTED":
            self.stop(self.reason, self.clock)
            return True
        return False

    # ------------------------------------------------------------------ output
    def _revision_summary(self, rev: dict[str, Any], is_target: bool) -> dict[str, Any]:
        desired = int(self.service.desired_count or 0)
        scale_up_done = (
            self.stage_index > self.stages.index("SCALE_UP") if "SCALE_UP" in self.stages else self.stage_index >= 0
        )
        if is_target:
            if self.status == "SUCCESSFUL" or self.status == "ROLLBACK_FAILED":
                running = desired
            elif self.status in ("ROLLBACK_SUCCESSFUL", "PENDING"):
                running = 0
            else:
                running = desired if scale_up_done else 0
            test, prod = self.test_weight, self.prod_weight
            if self.status == "SUCCESSFUL":
                test = prod = 100.0
        else:
            is_rollback_rev = self.rollback_to is not None and rev["arn"] == self.rollback_to["arn"]
            running = 0 if self.status == "SUCCESSFUL" else (desired if is_rollback_rev or self.status in IN_FLIGHT else 0)
            test = 100.0 - self.test_weight if is_rollback_rev else 0.0
            prod = 100.0 - self.prod_weight if is_rollback_rev else 0.0
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

    def reported_stage(self) -> str | None:
        stage = self.stage
        if stage is None:
            return None
        if self.status == "IN_PROGRESS" and self.awaiting():
            mode = cfg.get(self.account, "paused_stage")
            if mode == "omitted":
                return None
            if mode == "previous":
                if stage == "PRE_PRODUCTION_TRAFFIC_SHIFT" and self.traffic_step > 0:
                    return "PRODUCTION_TRAFFIC_SHIFT"  # the previous traffic step
                return self.stages[self.stage_index - 1] if self.stage_index > 0 else None
        return stage

    def brief(self) -> dict[str, Any]:
        out = {
            "serviceDeploymentArn": self.arn,
            "serviceArn": self.service.arn,
            "clusterArn": self.service.cluster_arn,
            "startedAt": dt(self.started),
            "createdAt": dt(self.created),
            "finishedAt": dt(self.finished),
            "targetServiceRevisionArn": self.target["arn"],
            "status": self.status,
            "statusReason": self.reason,
        }
        return {k: v for k, v in out.items() if v is not None}

    def full(self) -> dict[str, Any]:
        listed = self.hooks if cfg.get(self.account, "list_finished_hooks") else self.awaiting()
        out = {
            "serviceDeploymentArn": self.arn,
            "serviceArn": self.service.arn,
            "clusterArn": self.service.cluster_arn,
            "createdAt": dt(self.created),
            "startedAt": dt(self.started),
            "finishedAt": dt(self.finished),
            "stoppedAt": dt(self.stopped),
            "updatedAt": dt(self.updated),
            "sourceServiceRevisions": [self._revision_summary(r, False) for r in self.source],
            "targetServiceRevision": self._revision_summary(self.target, True),
            "status": self.status,
            "statusReason": self.reason,
            "lifecycleStage": self.reported_stage(),
            "lifecycleHookDetails": [
                {
                    "hookId": h["hookId"],
                    "targetType": h["targetType"],
                    "status": h["status"],
                    "expiresAt": dt(h["expiresAt"]),
                    "timeoutAction": h["timeoutAction"],
                }
                for h in listed
            ],
            "deploymentConfiguration": self.config or None,
            "deploymentCircuitBreaker": self.cb,
            "alarms": self.alarms,
        }
        if self.rollback:
            out["rollback"] = {
                "reason": self.rollback["reason"],
                "startedAt": dt(self.rollback["startedAt"]),
                "serviceRevisionArn": self.rollback["serviceRevisionArn"],
            }
        return {k: v for k, v in out.items() if v is not None}

    def debug(self) -> dict[str, Any]:
        return {
            "arn": self.arn,
            "service": self.service.name,
            "origin": self.origin,
            "status": self.status,
            "reason": self.reason,
            "stage": self.stage,
            "created": self.created,
            "hooks": [dict(h) for h in self.hooks],
            "steps": self.steps,
            "step": self.traffic_step + 1,
            "phase": self.phase,
            "production_weight": self.prod_weight,
            "target": self.target,
            "source": self.source,
            "rollback_to": self.rollback_to,
        }


# ---------------------------------------------------------------------- backend glue
def _find_forward_actions(account: str, region: str, arn: str) -> list[Any]:
    """The forward actions of listener rule (ALB) or listener (NLB) `arn` in moto's ELBv2, or []
    when moto has no such rule (tests may name made-up ARNs)."""
    try:
        from moto.elbv2.models import elbv2_backends
    except ImportError:  # pragma: no cover - moto without ELBv2
        return []
    backend = elbv2_backends[account][region]
    for lb in list(backend.load_balancers.values()):
        for listener in list(lb.listeners.values()):
            holders = []
            if listener.arn == arn:
                # ModifyListener replaces the default rule's actions (moto keeps them there)
                default = getattr(listener, "_default_rule", {}).get(0)
                holders.append(default.actions if default is not None else getattr(listener, "default_actions", []))
            for rule in list(listener.rules.values()):
                if rule.arn == arn and not getattr(rule, "is_default", False):
                    holders.append(rule.actions)
            if holders:
                return [a for acts in holders for a in acts if getattr(a, "type", None) == "forward"]
    return []


def apply_listener_weights(dep: "Deployment") -> None:
    """ECS shifts traffic by changing the weights of the production (and test) listener rule's
    two target groups (AWS Containers blog "Gradual deployments in Amazon ECS with linear and
    canary strategies": "Elastic Load Balancing weighted target groups"; guide/
    alb-resources-for-blue-green). Blue = loadBalancers[].targetGroupArn, green =
    advancedConfiguration.alternateTargetGroupArn; weights are whole numbers (ELBv2 weights are
    integers), so 3.3 % is 3."""
    for lb in getattr(dep.service, "load_balancers", None) or []:
        adv = lb.get("advancedConfiguration") or {}
        blue, green = lb.get("targetGroupArn"), adv.get("alternateTargetGroupArn")
        if not blue or not green:
            continue
        for key_, weight in (("productionListenerRule", dep.prod_weight), ("testListenerRule", dep.test_weight)):
            arn = adv.get(key_)
            if not arn:
                continue
            wanted = {green: int(round(weight)), blue: 100 - int(round(weight))}
            for action in _find_forward_actions(dep.account, dep.region, arn):
                for tg in (action.data.get("ForwardConfig") or {}).get("TargetGroups", []):
                    if tg.get("TargetGroupArn") in wanted:
                        tg["Weight"] = wanted[tg["TargetGroupArn"]]


def swap_target_groups(service) -> None:
    """After a successful blue/green deployment the alternate target group serves production:
    ECS alternates the pair on each deployment (terraform-provider-aws #45678)."""
    for lb in getattr(service, "load_balancers", None) or []:
        adv = lb.get("advancedConfiguration") or {}
        alt = adv.get("alternateTargetGroupArn")
        if alt and lb.get("targetGroupArn"):
            lb["targetGroupArn"], adv["alternateTargetGroupArn"] = alt, lb["targetGroupArn"]


def advance(backend, now: float) -> None:
    """Brings the account's deployments and scheduled ECS actions up to `now`, in time order."""
    k = key(backend)
    while True:
        events = sorted((e for e in _scheduled.get(k, []) if e["due"] <= now), key=lambda e: e["due"])
        upto = events[0]["due"] if events else now
        for dep in list(_deployments.get(k, {}).values()):
            guard = 0
            while dep.status not in TERMINAL and dep.step(upto):
                guard += 1
                if guard > 1000:
                    break
        if not events:
            return
        _scheduled[k].remove(events[0])
        _run_scheduled(backend, events[0])


def _run_scheduled(backend, event: dict[str, Any]) -> None:
    dep: Deployment = event["deployment"]
    at = event["due"]
    if event["kind"] == "duplicate":
        # ECS itself starts a second deployment (a new service revision, same task definition)
        if dep.status in IN_FLIGHT and dep.service.task_definition == dep.target["taskDefinition"]:
            dup = start(backend, dep.service, at, origin="duplicate", supersede_now=False)
            _scheduled.setdefault(key(backend), []).append(
                {"due": at + cfg.seconds(dep.account, "duplicate_stop_seconds"), "kind": "replace", "deployment": dep, "by": dup}
            )
    elif event["kind"] == "replace":
        if dep.status not in TERMINAL:
            dep.clock = max(dep.clock, at)
            dep.stop(REPLACED_REASON, at)
            dep.event(f"deployment {dep.short_id()} was replaced by deployment {event['by'].short_id()}.", at)


def new_revision(backend, service, task_definition_arn: str, now: float) -> dict[str, Any]:
    revs = _revisions.setdefault(key(backend), {}).setdefault(service.arn, [])
    rev = {
        "arn": f"arn:aws:ecs:{backend.region_name}:{backend.account_id}:service-revision/"
        f"{service.cluster_name}/{service.name}/{secrets.randbelow(9 * 10**18) + 10**18}",
        "taskDefinition": task_definition_arn,
        "containerImages": container_images(backend, task_definition_arn),
        "active": True,
        "created": now,
    }
    revs.append(rev)
    return rev


def container_images(backend, task_definition_arn: str) -> list[dict[str, str]]:
    """ServiceRevision.containerImages (model: ContainerImage): "Amazon ECS resolves container
    image names and any image tags specified in the task definition to container image digests"
    when the revision is made, and uses that digest from then on. Resolved here from moto's ECR
    (an image of another registry, or a tag ECR does not hold, gets no digest)."""
    try:
        td = backend.describe_task_definition(task_definition_arn)
    except Exception:  # noqa: BLE001 - an unknown task definition has no images to resolve
        return []
    out = []
    for c in td.container_definitions:
        image = c.get("image", "")
        entry = {"containerName": c.get("name", ""), "image": image}
        digest = _ecr_digest(image)
        if digest:
            entry["imageDigest"] = digest
        out.append(entry)
    return out


def _ecr_digest(image: str) -> str | None:
    m = re.match(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/([^:@]+)(?::([^@]+))?(?:@(sha256:[0-9a-f]+))?$", image)
    if not m:
        return None
    account, region, repo, tag, digest = m.groups()
    if digest:
        return digest
    from moto.ecr.models import ecr_backends

    try:
        repository = ecr_backends[account][region].repositories.get(repo)
    except KeyError:
        return None
    for i in getattr(repository, "images", []) if repository else []:
        if (tag or "latest") in i.image_tags:
            return i.get_image_digest()
    return None


def service_deployments(backend, service) -> list[Deployment]:
    return [d for d in _deployments.get(key(backend), {}).values() if d.service is service]


def find(backend, arn: str) -> Deployment | None:
    return _deployments.get(key(backend), {}).get(arn)


def all_for_account(account: str) -> list[tuple[Any, Deployment]]:
    return [(k, d) for k, by_arn in _deployments.items() if k[0] == account for d in by_arn.values()]


def start(backend, service, now: float, origin: str, previous_td: str | None = None, supersede_now: bool = True) -> Deployment:
    """Starts a deployment of the service's current taskDefinition. A newer deployment replaces
    one still in flight: the old one goes STOPPED (kayac/ecspresso #961: "Replaced by a new
    service deployment"); `supersede_now=False` leaves that to a scheduled event."""
    if supersede_now:
        for old in service_deployments(backend, service):
            if old.status not in TERMINAL:
                old.clock = max(old.clock, now)
                old.stop(REPLACED_REASON, now)
    revs = _revisions.setdefault(key(backend), {}).setdefault(service.arn, [])
    stable = _stable.get(key(backend), {}).get(service.arn)
    if not revs and previous_td:
        stable = new_revision(backend, service, previous_td, now)
        _stable.setdefault(key(backend), {})[service.arn] = stable
    active = [r for r in revs if r.get("active")]
    source = sorted(active, key=lambda r: (r is not stable, r["created"]))
    target = new_revision(backend, service, service.task_definition, now)
    dep = Deployment(backend, service, source, stable, target, now, origin)
    _deployments.setdefault(key(backend), {})[dep.arn] = dep
    service.deployments[:] = [
        {
            **(service.deployments[0] if service.deployments else {}),
            "id": f"ecs-svc/{secrets.randbelow(10**18)}",
            "status": "PRIMARY",
            "taskDefinition": service.task_definition,
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": "ECS deployment in progress.",
            "createdAt": dt(now),
            "updatedAt": dt(now),
            "desiredCount": service.desired_count,
        }
    ] + [{**d, "status": "ACTIVE"} for d in service.deployments[:1]]
    dep.event(f"has started a {dep.strategy} deployment {dep.short_id()}.", now)
    if origin in ("update", "supersede") and cfg.get(dep.account, "duplicate_deployments"):
        _scheduled.setdefault(key(backend), []).append(
            {"due": now + cfg.seconds(dep.account, "duplicate_after_seconds"), "kind": "duplicate", "deployment": dep}
        )
    return dep


def complete_initial(backend, service, now: float) -> Deployment:
    """CreateService's first deployment: nothing to shift from, it completes at once."""
    dep = start(backend, service, now, origin="create")
    dep.source = []
    dep.rollback_to = None
    dep.status = "SUCCESSFUL"
    dep.reason = "ECS deployment completed."
    dep.started = dep.finished = dep.updated = now
    dep.stage_index = len(dep.stages) - 1
    dep.set_service_td(service.task_definition, "COMPLETED", "ECS deployment completed.", now)
    service.deployments[:] = service.deployments[:1]
    _stable.setdefault(key(backend), {})[service.arn] = dep.target
    return dep
