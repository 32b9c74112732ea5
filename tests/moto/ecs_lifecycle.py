"""ECS service-deployment lifecycle plugin for moto (test harness, not product code).

moto 5.2 has no List/Describe/Stop/ContinueServiceDeployment and never advances a deployment.
This plugin adds them, with a service-deployment state machine held to the ECS API model and
the AWS developer guide (docs/moto-plugin.md cites the source of every behaviour, and lists
what is still simplified). Modules:
  lifecycle_config.py      per-account timings, knobs, profiles, throttling, faults, call counters
  lifecycle_deployment.py  the deployment state machine (virtual clock, lazy advance)
  lifecycle_validation.py  Create/UpdateService checks AWS makes and moto does not
  ecs_lifecycle.py         (this file) the patched ECS responses and the control endpoint

How it runs: `install()` patches moto's ECS response class before the server starts. Before
every ECS action of an account, all of that account's deployments are brought up to "now" on a
virtual clock (each transition at the time it was due), so results do not depend on how often
a client polls.

Control endpoint (plain JSON over HTTP on the moto port; `account` = the 12-digit access key id):
  POST   /_plugin/config  {"account", "profile", <keys of lifecycle_config.BASE>}
  POST   /_plugin/faults  {"account", "kind", ...}         arm a fault (lifecycle_config.FAULT_KINDS)
  DELETE /_plugin/faults?account=A                         disarm all faults of an account
  GET    /_plugin/state?account=A                          deployments, faults, config, calls
  DELETE /_plugin/calls?account=A                          reset the per-action call counters
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any
from urllib.parse import parse_qs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from moto.core.exceptions import ServiceException  # noqa: E402
from moto.core.responses import ActionResult  # noqa: E402
from moto.ecs import models as ecs_models  # noqa: E402
from moto.ecs.models import ecs_backends  # noqa: E402
from moto.ecs.responses import EC2ContainerServiceResponse  # noqa: E402
from moto.moto_api import state_manager  # noqa: E402

import lifecycle_config as cfg  # noqa: E402
import lifecycle_deployment as ld  # noqa: E402
from lifecycle_validation import (  # noqa: E402
    InvalidParameter,
    merge_deployment_configuration,
    validate_controller_update,
    validate_deployment_configuration,
)

_LOCK = threading.RLock()
# task arn -> {"due": epoch seconds, "exit_code": int, "reason": str}
_tasks: dict[str, dict[str, Any]] = {}
TASK_MODEL = "ecs::task::lifecycle-plugin"

# Coral-based AWS JSON services answer throttling with this __type and message (HTTP 400); the
# SDKs keep the part after '#': ThrottlingException ("Request throttling for the Amazon ECS API").
THROTTLING_TYPE = "com.amazon.coral.availability#ThrottlingException"


class DeploymentNotFound(ServiceException):
    code = "ServiceDeploymentNotFoundException"
    message = "The service deployment does not exist."


class ClientError(ServiceException):
    code = "ClientException"


class ConflictError(ServiceException):
    code = "ConflictException"


def _error(status: int, type_: str, message: str):
    body = json.dumps({"__type": type_, "message": message})
    short = type_.rsplit("#", 1)[-1]
    return status, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": short}, body


# ---------------------------------------------------------------------- response methods
_orig_call_action = EC2ContainerServiceResponse.call_action
_orig_create_service = EC2ContainerServiceResponse.create_service
_orig_update_service = EC2ContainerServiceResponse.update_service
_orig_run_task = EC2ContainerServiceResponse.run_task
_orig_describe_tasks = EC2ContainerServiceResponse.describe_tasks


def _call_action(self):
    account = self.current_account
    try:
        action = self._get_action()
    except Exception:  # noqa: BLE001 - an unknown route; moto answers it as usual
        action = "Unknown"
    now = time.time()
    with _LOCK:
        cfg.count_call(account, action)
        if cfg.take(account, "throttle", action=action) is not None:
            return _error(400, THROTTLING_TYPE, "Rate exceeded")
        if cfg.take(account, "server_error", action=action) is not None:
            return _error(500, "ServerException", "Service unavailable (injected fault)")
        if not cfg.take_token(account, action, now):
            return _error(400, THROTTLING_TYPE, "Rate exceeded")
        backend = ecs_backends[account][self.region]
        ld.advance(backend, now)
        return _orig_call_action(self)


def _create_service(self):
    config = self._get_param("deploymentConfiguration")
    account = self.current_account
    validate_deployment_configuration(
        config,
        cfg.get(account, "lambda_role_required"),
        mismatch=cfg.get(account, "strategy_configuration_mismatch"),
    )
    result = _orig_create_service(self)
    service = result.result["service"] if isinstance(result, ActionResult) else None
    if service is None:
        return result
    # moto drops deploymentConfiguration on create; keep it as AWS does.
    if config:
        service.deployment_configuration = config
    if service.task_definition:
        service.task_definition = _task_def_arn(self.ecs_backend, service.task_definition)
        # CreateService starts the service's first deployment; with nothing to shift from, it
        # completes at once (a simplification).
        ld.complete_initial(self.ecs_backend, service, time.time())
    return result


def _update_service(self):
    backend = self.ecs_backend
    name = (self._get_param("service") or "").split("/")[-1]
    cluster = self._get_param("cluster", "default")
    service = backend._get_service(cluster, name)
    request = self._get_params()
    validate_controller_update(ld.controller_type(service), request)
    sent = request.get("deploymentConfiguration")
    merged = None
    if sent is not None:
        mode = cfg.get(self.current_account, "deployment_configuration_update")
        merged = merge_deployment_configuration(getattr(service, "deployment_configuration", None), sent, mode)
        validate_deployment_configuration(
            merged,
            cfg.get(self.current_account, "lambda_role_required"),
            sent=sent,
            mismatch=cfg.get(self.current_account, "strategy_configuration_mismatch"),
        )
    previous = service.task_definition
    requested = request.get("taskDefinition")
    force = bool(request.get("forceNewDeployment"))
    result = _orig_update_service(self)
    # moto replaces deploymentConfiguration with what was sent; AWS keeps omitted fields
    if merged is not None:
        service.deployment_configuration = merged
    if requested:
        service.task_definition = _task_def_arn(backend, requested)
    changed = bool(requested) and service.task_definition != previous
    if (changed or force) and ld.controller_type(service) == "ECS":
        ld.start(backend, service, time.time(), origin="update", previous_td=previous)
    return result


def _run_task(self):
    result = _orig_run_task(self)
    now = time.time()
    for task in result.result.get("tasks", []):
        family = task.task_definition_arn.split("/")[-1].split(":")[0]
        fault = cfg.take(self.current_account, "fail_task", family=family)
        task.model_name = TASK_MODEL
        task.status = "RUNNING"
        task.last_status = "RUNNING"
        for c in task.containers:
            c.last_status = "RUNNING"
            c.exitCode = None
            _fix_container_types(c)
        _tasks[task.task_arn] = {
            "due": now + cfg.seconds(self.current_account, "run_task_seconds"),
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
            task.stopped_at = ld.dt(info["due"])
            for c in task.containers:
                c.last_status = "STOPPED"
                c.exitCode = info["exit_code"]
                c.exit_code = info["exit_code"]
                c.reason = None if info["exit_code"] == 0 else f"exit code {info['exit_code']}"
    return result


def _task_def_arn(backend, name_or_arn: str | None) -> str | None:
    if not name_or_arn:
        return None
    return backend.describe_task_definition(name_or_arn).arn


def _find(backend, arn: str) -> ld.Deployment:
    dep = ld.find(backend, arn)
    if dep is None:
        raise DeploymentNotFound()
    return dep


def _epoch(value: Any) -> float:
    """A request timestamp: epoch seconds on the wire, a datetime once moto has parsed it."""
    return value.timestamp() if hasattr(value, "timestamp") else float(value)


def _visible(dep: ld.Deployment, now: float) -> bool:
    """Eventual consistency: a deployment younger than list_lag_seconds is not yet visible."""
    return now >= dep.created + cfg.seconds(dep.account, "list_lag_seconds")


def list_service_deployments(self):
    backend = self.ecs_backend
    service = backend._get_service(self._get_param("cluster", "default"), self._get_param("service"))
    now = time.time()
    size = int(self._get_param("maxResults") or 20)
    if not 1 <= size <= 100:
        raise InvalidParameter("maxResults must be between 1 and 100.")
    statuses = self._get_param("status") or []
    deps = sorted(ld.service_deployments(backend, service), key=lambda d: d.created, reverse=True)
    deps = [d for d in deps if _visible(d, now)]
    if statuses:
        deps = [d for d in deps if d.status in statuses]
    created = self._get_param("createdAt") or {}
    if created.get("after") is not None:
        deps = [d for d in deps if d.created >= _epoch(created["after"])]
    if created.get("before") is not None:
        deps = [d for d in deps if d.created <= _epoch(created["before"])]
    start = int(self._get_param("nextToken") or 0)
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
    now = time.time()
    found, failures = [], []
    for arn in arns:
        dep = ld.find(backend, arn)
        if dep is None or not _visible(dep, now):
            failures.append({"arn": arn, "reason": "MISSING"})
        else:
            found.append(dep.full())
    return ActionResult({"serviceDeployments": found, "failures": failures})


def stop_service_deployment(self):
    backend = self.ecs_backend
    dep = _find(backend, self._get_param("serviceDeploymentArn"))
    stop_type = self._get_param("stopType") or "ROLLBACK"
    if stop_type not in ("ROLLBACK", "ABORT"):
        raise InvalidParameter(f"stopType {stop_type!r} is not one of ROLLBACK, ABORT.")
    if dep.status not in ld.STOPPABLE:
        raise ConflictError(
            f"The service deployment is {dep.status}; only a PENDING, IN_PROGRESS, STOP_REQUESTED, "
            "ROLLBACK_REQUESTED or ROLLBACK_IN_PROGRESS deployment can be stopped."
        )
    if dep.status in ld.IN_FLIGHT:
        now = time.time()
        dep.clock = max(dep.clock, now)
        if stop_type == "ROLLBACK":
            dep.start_rollback("Service deployment rolled back by StopServiceDeployment.", dep.clock)
        else:
            dep.fail_open_hooks()
            dep.status = "STOP_REQUESTED"
            dep.reason = "Service deployment stopped by StopServiceDeployment."
            dep.updated = dep.clock
    # STOP_REQUESTED: "continues to stop"; ROLLBACK_*: "continues the rollback operation"
    return ActionResult({"serviceDeploymentArn": dep.arn})


def continue_service_deployment(self):
    backend = self.ecs_backend
    dep = _find(backend, self._get_param("serviceDeploymentArn"))
    hook_id = self._get_param("hookId")
    action = self._get_param("action") or "CONTINUE"
    if action not in ("CONTINUE", "ROLLBACK"):
        raise InvalidParameter(f"action {action!r} is not one of CONTINUE, ROLLBACK.")
    if dep.status != "IN_PROGRESS":
        raise ClientError(f"The service deployment is {dep.status}; it must be IN_PROGRESS to continue.")
    hook = next((h for h in dep.hooks if h["hookId"] == hook_id), None)
    if hook is None:
        raise InvalidParameter(f"The hook {hook_id} does not belong to this service deployment.")
    if hook["status"] != "AWAITING_ACTION":
        raise ClientError(f"The hook {hook_id} is {hook['status']}, not AWAITING_ACTION.")
    now = max(dep.clock, time.time())
    dep.clock = dep.updated = now
    hook["status"] = "SUCCEEDED"
    if action == "ROLLBACK":
        dep.start_rollback(f"Rolled back by ContinueServiceDeployment at {hook['_stage']}.", now)
    elif not dep.awaiting():
        dep.next_stage(now)
    return ActionResult({"serviceDeploymentArn": dep.arn})


# ---------------------------------------------------------------------- control endpoint
def describe_service_revisions(self):
    """DescribeServiceRevisions (model: DescribeServiceRevisionsRequest/Response, ServiceRevision,
    1-20 ARNs, unknown ones in failures[] as MISSING): what an UpdateService caller reads to tell
    which task definition a service deployment targets (UpdateService does not return the
    deployment: aws/containers-roadmap #2709)."""
    backend = self.ecs_backend
    arns = self._get_param("serviceRevisionArns") or []
    if not arns or len(arns) > 20:
        raise InvalidParameter("serviceRevisionArns must name between 1 and 20 service revisions.")
    by_arn = {rev["arn"]: rev for revs in ld._revisions.get(ld.key(backend), {}).values() for rev in revs}
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
                "containerImages": rev.get("containerImages", []),
                "createdAt": ld.dt(rev.get("created")),
            }
        )
    return ActionResult({"serviceRevisions": found, "failures": failures})


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
        if not isinstance(body, dict):
            return _reply(start_response, 400, {"error": "body must be a JSON object"})
    account = str(body.get("account") or query.get("account") or "")
    with _LOCK:
        if path == "/_plugin/config" and method == "POST":
            if not account:
                return _reply(start_response, 400, {"error": "account is required"})
            try:
                cfg.configure(account, body)
            except (ValueError, TypeError) as e:
                return _reply(start_response, 400, {"error": str(e)})
            return _reply(start_response, 200, {"account": account, **cfg.snapshot(account)})
        if path == "/_plugin/faults" and method == "POST":
            if not account:
                return _reply(start_response, 400, {"error": "account is required"})
            at = body.get("at")
            if at is not None and at not in ld.TRAFFIC_SHIFT_STAGES:
                return _reply(start_response, 400, {"error": f"at must be one of {ld.TRAFFIC_SHIFT_STAGES}"})
            step = body.get("step")
            if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 1):
                return _reply(start_response, 400, {"error": "step is a traffic step number (1, 2, ...)"})
            try:
                fault = cfg.arm(account, body)
            except (ValueError, TypeError) as e:
                return _reply(start_response, 400, {"error": str(e)})
            return _reply(start_response, 200, {"armed": fault})
        if path == "/_plugin/faults" and method == "DELETE":
            cfg.disarm(account)
            return _reply(start_response, 200, {"cleared": account})
        if path == "/_plugin/calls" and method == "DELETE":
            cfg.reset_calls(account)
            return _reply(start_response, 200, {"cleared": account})
        if path == "/_plugin/state" and method == "GET":
            now = time.time()
            regions = {k for k, _ in ld.all_for_account(account)}
            for acct, region in regions:
                ld.advance(ecs_backends[acct][region], now)
            return _reply(
                start_response,
                200,
                {
                    "deployments": [d.debug() for _, d in ld.all_for_account(account)],
                    "faults": cfg.faults(account),
                    "ignored_faults": cfg.ignored(account),
                    "config": cfg.snapshot(account),
                    "calls": cfg.calls(account),
                },
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
