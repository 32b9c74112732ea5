"""Fixtures of the emulator's own tests (tests/moto/test_*.py), run by scripts/checks/emulator.sh.

The tests talk to a moto server with the lifecycle plugin through boto3, as any client would:
- by default they start their own (`python tests/moto/server.py` on a free loopback port, with
  the plugin's defaults: ECS_PLUGIN_* variables are not passed on), so plugin edits are tested
  without restarting anything;
- with MOTO_ENDPOINT=http://127.0.0.1:PORT they use that server instead (the one `scripts/env up`
  started, say); it must then be reachable, or every test fails saying what to start.
Each test gets a fresh random 12-digit account (see server.py), so tests never share state.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import boto3
import pytest
from botocore.config import Config

HERE = Path(__file__).resolve().parent


def _get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback test server
        return resp.read()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env_extra: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Starts tests/moto/server.py on a free port; returns (process, endpoint)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECS_PLUGIN_")}
    env.update(env_extra or {})
    log = open(os.environ.get("EMULATOR_TEST_LOG", os.devnull), "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "server.py"), "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            _get(f"{endpoint}/_plugin/state?account=0")
            return proc, endpoint
        except (urllib.error.URLError, ConnectionError, OSError):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"tests/moto/server.py exited with {proc.returncode} (is moto[server] installed in {sys.executable}?)"
                ) from None
            if time.time() > deadline:
                proc.kill()
                raise RuntimeError("tests/moto/server.py did not answer within 60 s") from None
            time.sleep(0.2)


@pytest.fixture(scope="session")
def endpoint():
    given = os.environ.get("MOTO_ENDPOINT")
    if given:
        try:
            _get(f"{given}/_plugin/state?account=0")
        except Exception as e:  # noqa: BLE001
            pytest.fail(
                f"MOTO_ENDPOINT={given} does not answer /_plugin/state ({e}): start moto with the lifecycle "
                "plugin (`scripts/env up`, which runs tests/moto/server.py), or unset MOTO_ENDPOINT to let "
                "the tests start their own server",
                pytrace=False,
            )
        yield given
        return
    try:
        proc, url = start_server()
    except RuntimeError as e:
        pytest.fail(f"could not start the moto server with the lifecycle plugin: {e}", pytrace=False)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


class Account:
    """One fresh AWS account on the test server: boto3 clients and the plugin's control routes."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.id = "".join(str(secrets.randbelow(10)) for _ in range(12))
        self.ecs = self.client("ecs")

    def client(self, service: str, retries: int = 1):
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.id,
            aws_secret_access_key="testing",
            # no client-side checks: the Rust SDK sends what boto3 would refuse (timeoutInMinutes 0)
            config=Config(retries={"total_max_attempts": retries, "mode": "standard"}, parameter_validation=False),
        )

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps({"account": self.id, **body}).encode()
        sep = "&" if "?" in path else "?"
        url = f"{self.endpoint}{path}" + ("" if body is not None else f"{sep}account={self.id}")
        req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def config(self, **body: Any) -> dict[str, Any]:
        status, out = self.control("POST", "/_plugin/config", body)
        assert status == 200, out
        return out

    def fault(self, **body: Any) -> dict[str, Any]:
        status, out = self.control("POST", "/_plugin/faults", body)
        assert status == 200, out
        return out

    def state(self) -> dict[str, Any]:
        status, out = self.control("GET", "/_plugin/state")
        assert status == 200, out
        return out

    # ------------------------------------------------------------------ ECS fixtures
    def register(self, family: str, image: str) -> str:
        return self.ecs.register_task_definition(
            family=family,
            containerDefinitions=[{"name": "app", "image": image, "memory": 128, "essential": True}],
        )["taskDefinition"]["taskDefinitionArn"]

    def service(
        self,
        name: str = "svc",
        deployment_configuration: dict[str, Any] | None = None,
        desired: int = 2,
        controller: str = "ECS",
        load_balancers: list[dict[str, Any]] | None = None,
    ) -> dict[str, str]:
        """A cluster `c` and a service `name` on task definition `name`:1; returns the ARNs of
        `name`:1 ("v1"), `name`:2 ("v2") and `name`:3 ("v3")."""
        self.ecs.create_cluster(clusterName="c")
        tds = {f"v{i}": self.register(name, f"img:{i}") for i in (1, 2, 3)}
        kwargs: dict[str, Any] = {
            "cluster": "c",
            "serviceName": name,
            "taskDefinition": tds["v1"],
            "desiredCount": desired,
            "deploymentController": {"type": controller},
        }
        if deployment_configuration is not None:
            kwargs["deploymentConfiguration"] = deployment_configuration
        if load_balancers is not None:
            kwargs["loadBalancers"] = load_balancers
        self.ecs.create_service(**kwargs)
        return tds

    def update(self, name: str = "svc", **kwargs: Any) -> dict[str, Any]:
        return self.ecs.update_service(cluster="c", service=name, **kwargs)["service"]

    def describe_service(self, name: str = "svc") -> dict[str, Any]:
        return self.ecs.describe_services(cluster="c", services=[name])["services"][0]

    def deployments(self, name: str = "svc", **kwargs: Any) -> list[dict[str, Any]]:
        return self.ecs.list_service_deployments(cluster="c", service=name, **kwargs)["serviceDeployments"]

    def describe(self, arn: str) -> dict[str, Any]:
        out = self.ecs.describe_service_deployments(serviceDeploymentArns=[arn])
        assert not out["failures"], out["failures"]
        return out["serviceDeployments"][0]

    def newest(self, name: str = "svc") -> dict[str, Any]:
        return self.deployments(name)[0]

    def wait(self, what: str, fn: Callable[[], Any], timeout: float = 10.0, every: float = 0.05) -> Any:
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = fn()
            if last:
                return last
            time.sleep(every)
        raise AssertionError(f"timed out waiting for {what} (last: {last!r})")

    def wait_status(self, arn: str, *statuses: str, timeout: float = 10.0) -> dict[str, Any]:
        return self.wait(
            f"{arn} to reach {statuses}",
            lambda: (lambda d: d if d["status"] in statuses else None)(self.describe(arn)),
            timeout,
        )

    def wait_paused(self, arn: str, timeout: float = 10.0) -> dict[str, Any]:
        def paused():
            d = self.describe(arn)
            hooks = [h for h in d.get("lifecycleHookDetails", []) if h["status"] == "AWAITING_ACTION"]
            return (d, hooks[0]) if hooks else None

        return self.wait(f"{arn} to pause", paused, timeout)


@pytest.fixture
def acct(endpoint) -> Account:
    a = Account(endpoint)
    a.config(stage_seconds=0.05, minute_seconds=0.5, rollback_seconds=0.05, run_task_seconds=0.1)
    return a


BLUE_GREEN = {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}


def pause_at(*stages: str, minutes: int = 10, action: str = "ROLLBACK") -> dict[str, Any]:
    return {
        "targetType": "PAUSE",
        "lifecycleStages": list(stages),
        "timeoutConfiguration": {"timeoutInMinutes": minutes, "action": action},
    }
