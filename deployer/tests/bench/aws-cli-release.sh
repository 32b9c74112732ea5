#!/usr/bin/env bash
# Benchmark baseline: the API calls of `deployer release` made one by one with the aws CLI, as a
# careful shell script would (lock, audit, migration task, register + update each service, follow
# each deployment, smoke-check at the PAUSE hook, continue, audit, unlock). Inputs from the
# environment: CLUSTER, SERVICES ("name:strategy ..."), NEW_SHA, REPO, IMAGE, SMOKE_URL, TOKEN,
# LOCK_TABLE, AUDIT_TABLE, ENV_NAME, AWS_* (endpoint, credentials, region).
set -euo pipefail
A=(aws --endpoint-url "$AWS_ENDPOINT_URL" --region "$AWS_REGION" --output text)
RID="r$(date +%s)"

"${A[@]}" ecr describe-images --repository-name "$REPO" --image-ids imageTag="$NEW_SHA" --query 'imageDetails[0].imageDigest' >/dev/null
for t in "$LOCK_TABLE:pk" "$AUDIT_TABLE:env"; do
  name=${t%%:*} key=${t##*:}
  "${A[@]}" dynamodb describe-table --table-name "$name" >/dev/null 2>&1 || \
    "${A[@]}" dynamodb create-table --table-name "$name" --billing-mode PAY_PER_REQUEST \
      --attribute-definitions AttributeName="$key",AttributeType=S --key-schema AttributeName="$key",KeyType=HASH >/dev/null
done
"${A[@]}" dynamodb put-item --table-name "$LOCK_TABLE" --condition-expression 'attribute_not_exists(pk)' \
  --item "{\"pk\":{\"S\":\"lock#$ENV_NAME\"},\"owner\":{\"S\":\"bench\"},\"release_id\":{\"S\":\"$RID\"}}" >/dev/null
"${A[@]}" dynamodb put-item --table-name "$AUDIT_TABLE" \
  --item "{\"env\":{\"S\":\"$ENV_NAME\"},\"release\":{\"S\":\"$RID\"},\"outcome\":{\"S\":\"in_progress\"}}" >/dev/null

# Migration: one-off task, wait for exit code 0.
td=$("${A[@]}" ecs register-task-definition --family platform-migrate \
  --container-definitions "[{\"name\":\"migrate\",\"image\":\"$IMAGE\",\"memory\":256,\"essential\":true}]" \
  --query 'taskDefinition.taskDefinitionArn')
task=$("${A[@]}" ecs run-task --cluster "$CLUSTER" --task-definition "$td" --launch-type FARGATE --query 'tasks[0].taskArn')
until [[ $("${A[@]}" ecs describe-tasks --cluster "$CLUSTER" --tasks "$task" --query 'tasks[0].lastStatus') == STOPPED ]]; do :; done
[[ $("${A[@]}" ecs describe-tasks --cluster "$CLUSTER" --tasks "$task" --query 'tasks[0].containers[0].exitCode') == 0 ]]

for entry in $SERVICES; do
  svc=${entry%%:*} strategy=${entry##*:}
  td=$("${A[@]}" ecs register-task-definition --family "$svc" \
    --container-definitions "[{\"name\":\"$svc\",\"image\":\"$IMAGE\",\"memory\":256,\"essential\":true,\"environment\":[{\"name\":\"GIT_SHA\",\"value\":\"$NEW_SHA\"}]}]" \
    --tags key=git_sha,value="$NEW_SHA" key=release_id,value="$RID" --query 'taskDefinition.taskDefinitionArn')
  if [[ $strategy == blue_green ]]; then
    dc='{"strategy":"BLUE_GREEN","bakeTimeInMinutes":0,"deploymentCircuitBreaker":{"enable":true,"rollback":true},"lifecycleHooks":[{"targetType":"PAUSE","lifecycleStages":["POST_TEST_TRAFFIC_SHIFT"],"timeoutConfiguration":{"timeoutInMinutes":10,"action":"ROLLBACK"}}]}'
  else
    dc='{"strategy":"ROLLING","deploymentCircuitBreaker":{"enable":true,"rollback":true},"minimumHealthyPercent":100,"maximumPercent":200}'
  fi
  "${A[@]}" ecs update-service --cluster "$CLUSTER" --service "$svc" --task-definition "$td" --deployment-configuration "$dc" >/dev/null
  # Newest first; a fast rolling deployment may already be SUCCESSFUL, so no status filter.
  arn=$("${A[@]}" ecs list-service-deployments --cluster "$CLUSTER" --service "$svc" --query 'serviceDeployments[0].serviceDeploymentArn')
  [[ $arn == arn:* ]] || { echo "no service deployment for $svc" >&2; exit 1; }
  while :; do
    read -r status hook hookstatus < <("${A[@]}" ecs describe-service-deployments --service-deployment-arns "$arn" \
      --query 'serviceDeployments[0].[status, lifecycleHookDetails[-1].hookId, lifecycleHookDetails[-1].status]')
    case $status in SUCCESSFUL) break ;; ROLLBACK_SUCCESSFUL|STOPPED|ROLLBACK_FAILED) echo "deployment of $svc failed: $status" >&2; exit 1 ;; esac
    if [[ $hookstatus == AWAITING_ACTION ]]; then
      curl -fsS -H "Authorization: Bearer $TOKEN" "$SMOKE_URL/api/v1/health" | grep -q "\"git_sha\":\"$NEW_SHA\""
      "${A[@]}" ecs continue-service-deployment --service-deployment-arn "$arn" --hook-id "$hook" --action CONTINUE >/dev/null
    fi
  done
  [[ $("${A[@]}" ecs describe-services --cluster "$CLUSTER" --services "$svc" --query 'services[0].taskDefinition') == "$td" ]]
done

"${A[@]}" dynamodb put-item --table-name "$AUDIT_TABLE" \
  --item "{\"env\":{\"S\":\"$ENV_NAME\"},\"release\":{\"S\":\"$RID\"},\"outcome\":{\"S\":\"succeeded\"}}" >/dev/null
"${A[@]}" dynamodb delete-item --table-name "$LOCK_TABLE" --key "{\"pk\":{\"S\":\"lock#$ENV_NAME\"}}" >/dev/null
echo "baseline release $RID succeeded"
