"""Per-account settings of the ECS lifecycle plugin: timings, knobs, profiles, throttling buckets,
armed faults and per-action call counters (test harness, not product code).

Everything here is keyed by account (the test's 12-digit access key id, see server.py), so
parallel tests never see each other's settings. docs/moto-plugin.md describes every key and
cites the AWS source of each behaviour; where AWS leaves a behaviour unspecified it is a knob.
"""

from __future__ import annotations

import os
import random
from typing import Any

# ---------------------------------------------------------------------- keys and defaults
# Base defaults ("fast"); ECS_PLUGIN_<KEY> env vars change the timing defaults for a whole server.
_TIMING_KEYS = ("stage_seconds", "minute_seconds", "run_task_seconds", "rollback_seconds")
BASE: dict[str, Any] = {
    "stage_seconds": 0.3,
    # how long one configured minute (bakeTimeInMinutes, hook timeoutInMinutes) lasts
    "minute_seconds": 2.0,
    "run_task_seconds": 0.5,
    "rollback_seconds": 0.5,
    # how long a new deployment stays PENDING: a number, or [low, high] for a uniform random pick
    "pending_seconds": 0.0,
    # what lifecycleStage says while a PAUSE hook is AWAITING_ACTION (AWS does not document it):
    # "stage" = the hook's stage, "omitted" = no lifecycleStage, "previous" = the stage before it
    "paused_stage": "stage",
    # whether SUCCEEDED/FAILED/TIMED_OUT hooks stay in lifecycleHookDetails (not documented)
    "list_finished_hooks": True,
    # eventual consistency: a new deployment is absent from List / MISSING in Describe for N s
    "list_lag_seconds": 0.0,
    # ECS starts a second deployment for the same UpdateService (ecspresso #899/#929)
    "duplicate_deployments": False,
    "duplicate_after_seconds": 1.0,
    "duplicate_stop_seconds": 1.0,
    # UpdateService with a partial deploymentConfiguration: "merge" keeps the fields the request
    # omits, "replace" resets them (AWS does not document which; see docs/moto-plugin.md)
    "deployment_configuration_update": "merge",
    # whether CreateService/UpdateService refuse an AWS_LAMBDA hook without roleArn (the model
    # only says hookTargetArn is required)
    "lambda_role_required": True,
    # token buckets: {"<Action or *>": {"rate": tokens/s, "burst": bucket size}}
    "throttle": {},
    # LINEAR/CANARY: where a client can read which traffic step a deployment is at (the API has
    # no step field): "events" = a service event per step, "status_reason" = statusReason names
    # the step too, "none" = only the revisions' requestedProductionTrafficWeight tells
    "step_reporting": "events",
    # LINEAR/CANARY: when the PRE_PRODUCTION_TRAFFIC_SHIFT hooks of step n+1 run relative to the
    # step bake after step n: "after_bake" (shift, bake, hooks, shift) or "before_bake" (shift,
    # hooks, bake, shift). AWS says only "before every traffic shift step" / "between each step"
    "step_hook_timing": "after_bake",
    # a request that sends linearConfiguration (canaryConfiguration) with another strategy: the
    # model says "Only valid when the deployment strategy is LINEAR (CANARY)"; whether AWS
    # refuses or ignores it is not documented: "ignore" keeps it unused, "reject" refuses it
    "strategy_configuration_mismatch": "ignore",
}
for _k in _TIMING_KEYS:
    _env = os.environ.get(f"ECS_PLUGIN_{_k.upper()}")
    if _env:
        BASE[_k] = float(_env)

PROFILES: dict[str, dict[str, Any]] = {
    "fast": {},
    # stages of a few seconds, PENDING 1-3 s, one configured minute lasts a minute. No throttle
    # buckets: the per-action ECS rates are not readable in the docs we could consult.
    "realistic": {
        "stage_seconds": 3.0,
        "minute_seconds": 60.0,
        "run_task_seconds": 5.0,
        "rollback_seconds": 5.0,
        "pending_seconds": [1.0, 3.0],
    },
    # fast timings, and every unspecified behaviour on its least convenient documented value
    "strict": {
        "list_finished_hooks": False,
        "paused_stage": "omitted",
        "list_lag_seconds": 2.0,
        "duplicate_deployments": True,
        "step_reporting": "none",
        "strategy_configuration_mismatch": "reject",
    },
}
DEFAULT_PROFILE = os.environ.get("ECS_PLUGIN_PROFILE", "fast") or "fast"
if DEFAULT_PROFILE not in PROFILES:
    raise SystemExit(f"ECS_PLUGIN_PROFILE={DEFAULT_PROFILE!r}: expected one of {sorted(PROFILES)}")

PAUSED_STAGE_VALUES = ("stage", "omitted", "previous")
DC_UPDATE_VALUES = ("merge", "replace")
CHOICES = {
    "step_reporting": ("events", "status_reason", "none"),
    "step_hook_timing": ("after_bake", "before_bake"),
    "strategy_configuration_mismatch": ("ignore", "reject"),
}

# account -> {"profile": name, "overrides": {key: value}}
_config: dict[str, dict[str, Any]] = {}


def _check(key: str, value: Any) -> Any:
    """Validates and normalises one config value; raises ValueError with a readable reason."""
    if key in _TIMING_KEYS or key in ("list_lag_seconds", "duplicate_after_seconds", "duplicate_stop_seconds"):
        v = float(value)
        if v < 0:
            raise ValueError(f"{key} must be >= 0")
        return v
    if key == "pending_seconds":
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                raise ValueError("pending_seconds as a list is [low, high]")
            lo, hi = float(value[0]), float(value[1])
            if lo < 0 or hi < lo:
                raise ValueError("pending_seconds [low, high] needs 0 <= low <= high")
            return [lo, hi]
        v = float(value)
        if v < 0:
            raise ValueError("pending_seconds must be >= 0")
        return v
    if key == "paused_stage":
        if value not in PAUSED_STAGE_VALUES:
            raise ValueError(f"paused_stage must be one of {list(PAUSED_STAGE_VALUES)}")
        return value
    if key == "deployment_configuration_update":
        if value not in DC_UPDATE_VALUES:
            raise ValueError(f"deployment_configuration_update must be one of {list(DC_UPDATE_VALUES)}")
        return value
    if key in CHOICES:
        if value not in CHOICES[key]:
            raise ValueError(f"{key} must be one of {list(CHOICES[key])}")
        return value
    if key in ("list_finished_hooks", "duplicate_deployments", "lambda_role_required"):
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false")
        return value
    if key == "throttle":
        if not isinstance(value, dict):
            raise ValueError('throttle is {"<Action or *>": {"rate": r, "burst": b}}')
        out = {}
        for action, bucket in value.items():
            if not isinstance(bucket, dict) or set(bucket) - {"rate", "burst"}:
                raise ValueError(f'throttle[{action!r}] must be {{"rate": r, "burst": b}}')
            rate, burst = float(bucket.get("rate", 0)), float(bucket.get("burst", 1))
            if rate < 0 or burst < 1:
                raise ValueError(f"throttle[{action!r}]: rate >= 0 and burst >= 1")
            out[str(action)] = {"rate": rate, "burst": burst}
        return out
    raise ValueError(f"unknown key {key}")


def configure(account: str, body: dict[str, Any]) -> None:
    """Applies a POST /_plugin/config body. "profile" starts the account afresh from that profile
    (earlier explicit keys are dropped); the other keys of the same call, and of later calls,
    override the profile's values. Raises ValueError (nothing changed) on a bad body."""
    keys = {k: v for k, v in body.items() if k not in ("account", "profile")}
    unknown = sorted(set(keys) - set(BASE))
    if unknown:
        raise ValueError(f"unknown keys {unknown} (known: {sorted(BASE) + ['profile']})")
    profile = body.get("profile")
    if profile is not None and profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}")
    checked = {k: _check(k, v) for k, v in keys.items()}
    entry = _config.setdefault(account, {"profile": DEFAULT_PROFILE, "overrides": {}})
    if profile is not None:
        entry["profile"] = profile
        entry["overrides"] = {}
        _buckets.pop(account, None)
    entry["overrides"].update(checked)
    if "throttle" in checked:
        _buckets.pop(account, None)


def profile_of(account: str) -> str:
    return _config.get(account, {}).get("profile", DEFAULT_PROFILE)


def get(account: str, key: str) -> Any:
    entry = _config.get(account)
    if entry is not None and key in entry["overrides"]:
        return entry["overrides"][key]
    prof = PROFILES[profile_of(account)]
    if key in prof:
        return prof[key]
    return BASE[key]


def seconds(account: str, key: str) -> float:
    """A timing value; a [low, high] pair is drawn uniformly each time it is read."""
    v = get(account, key)
    if isinstance(v, list):
        return random.uniform(v[0], v[1])
    return float(v)


def snapshot(account: str) -> dict[str, Any]:
    return {"profile": profile_of(account), **{k: get(account, k) for k in BASE}}


# ---------------------------------------------------------------------- throttling buckets
# account -> {bucket key: {"tokens": float, "at": epoch}}
_buckets: dict[str, dict[str, dict[str, float]]] = {}


def take_token(account: str, action: str, now: float) -> bool:
    """False when the account's bucket for `action` (its own entry, else "*") is empty. Buckets
    start full (`burst` tokens) and refill continuously at `rate` tokens per second."""
    spec = get(account, "throttle") or {}
    key = action if action in spec else ("*" if "*" in spec else None)
    if key is None:
        return True
    rate, burst = spec[key]["rate"], spec[key]["burst"]
    bucket = _buckets.setdefault(account, {}).setdefault(key, {"tokens": burst, "at": now})
    bucket["tokens"] = min(burst, bucket["tokens"] + (now - bucket["at"]) * rate)
    bucket["at"] = now
    if bucket["tokens"] >= 1.0:
        bucket["tokens"] -= 1.0
        return True
    return False


# ---------------------------------------------------------------------- call counters
_calls: dict[str, dict[str, int]] = {}


def count_call(account: str, action: str) -> None:
    per = _calls.setdefault(account, {})
    per[action] = per.get(action, 0) + 1


def calls(account: str) -> dict[str, int]:
    return dict(sorted(_calls.get(account, {}).items()))


def reset_calls(account: str) -> None:
    _calls.pop(account, None)


# ---------------------------------------------------------------------- faults
FAULT_KINDS = {
    # the circuit breaker trips at stage `at` (default SCALE_UP), if the deployment enables it
    "circuit_breaker",
    # a CloudWatch alarm of the deployment (`alarm`, default its first) goes to ALARM at `at`
    # (default BAKE_TIME), if the deployment enables alarms and names that alarm
    "alarm",
    # the next one-off task(s) (RunTask) of `family` (or any) exit with `exit_code` (default 1)
    "fail_task",
    # the next `count` ECS requests (of `action`, or any) answer ThrottlingException (HTTP 400)
    "throttle",
    # the next `count` ECS requests (of `action`, or any) answer HTTP 503 ServerException
    "server_error",
    # the service's next rollback ends ROLLBACK_FAILED
    "rollback_failed",
    # at stage `at` (default POST_SCALE_UP) another actor's UpdateService supersedes the deployment
    "supersede",
}
_faults: dict[str, list[dict[str, Any]]] = {}
# faults that were due but whose mechanism the deployment does not configure
_ignored: dict[str, list[dict[str, Any]]] = {}


def arm(account: str, body: dict[str, Any]) -> dict[str, Any]:
    kind = body.get("kind")
    if kind not in FAULT_KINDS:
        raise ValueError(f"kind must be one of {sorted(FAULT_KINDS)}")
    fault = {k: v for k, v in body.items() if k != "account"}
    fault["remaining"] = int(body.get("count") or 1)
    _faults.setdefault(account, []).append(fault)
    return fault


def _matches(fault: dict[str, Any], kind: str, match: dict[str, Any]) -> bool:
    return fault["kind"] == kind and all(fault.get(k) in (None, "*", v) for k, v in match.items())


def peek(account: str, kind: str, **match: Any) -> dict[str, Any] | None:
    for fault in _faults.get(account, []):
        if _matches(fault, kind, match):
            return fault
    return None


def take(account: str, kind: str, **match: Any) -> dict[str, Any] | None:
    """Consumes one firing of the first armed fault of `kind` whose fields match (None/"*" match all)."""
    fault = peek(account, kind, **match)
    if fault is not None:
        fault["remaining"] = fault.get("remaining", 1) - 1
        if fault["remaining"] <= 0:
            _faults[account].remove(fault)
    return fault


def record_ignored(account: str, fault: dict[str, Any], deployment: str, reason: str) -> None:
    _ignored.setdefault(account, []).append(
        {**{k: v for k, v in fault.items() if k != "remaining"}, "deployment": deployment, "reason": reason}
    )


def faults(account: str) -> list[dict[str, Any]]:
    return list(_faults.get(account, []))


def ignored(account: str) -> list[dict[str, Any]]:
    return list(_ignored.get(account, []))


def disarm(account: str) -> None:
    _faults.pop(account, None)
    _ignored.pop(account, None)
