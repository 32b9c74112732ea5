# `terraform plan` of the whole environment with a mock AWS provider (no account, no network):
# every module evaluated with known counts and for_each, which `terraform validate` does not do.
# scripts/checks/terraform-test.sh runs it (on the generated copy for the mirror's provider).
# The real provider (policy documents rendered for real), no account: data sources that would
# call AWS are overridden, and the one call planning makes (GetRandomPassword of the ephemeral
# password generator, which mock providers cannot serve) goes to a local stand-in
# (scripts/checks/lib/secretsmanager_stub.py, through AWS_ENDPOINT_URL_SECRETS_MANAGER).
provider "aws" {
  region                      = "eu-west-1"
  access_key                  = "plan-test"
  secret_key                  = "plan-test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  default_tags {
    tags = { Project = "agentic", Environment = "staging", ManagedBy = "terraform" }
  }
}

override_data {
  target = module.platform.data.aws_caller_identity.current
  values = { account_id = "111111111111", arn = "arn:aws:iam::111111111111:root", user_id = "111111111111" }
}

override_data {
  target = module.platform.module.github.data.aws_caller_identity.current
  values = { account_id = "111111111111", arn = "arn:aws:iam::111111111111:root", user_id = "111111111111" }
}

override_data {
  target = module.platform.module.network.data.aws_availability_zones.available
  values = { names = ["eu-west-1a", "eu-west-1b", "eu-west-1c"] }
}

override_data {
  target = module.platform.module.github.data.aws_iam_openid_connect_provider.github
  values = { arn = "arn:aws:iam::111111111111:oidc-provider/token.actions.githubusercontent.com" }
}

override_data {
  target = module.platform.module.data.data.aws_secretsmanager_random_password.redis
  values = { random_password = "plan-test-redis-token" }
}

variables {
  certificate_arn     = "arn:aws:acm:eu-west-1:111111111111:certificate/1234abcd-12ab-4cde-8f01-1234567890ab"
  domain_name         = "platform.staging.example.com"
  github_repository   = "example/ecs-deployer"
  image_tag           = "0000000000000000000000000000000000000000"
  state_bucket        = "example-terraform-state-111111111111"
  state_kms_key_arn   = "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-4cde-8f01-1234567890ab"
  test_listener_cidrs = ["203.0.113.0/24"]
}

run "the_environment_plans" {
  command = plan

  assert {
    condition     = length(output.ecs_service_names) == 6
    error_message = "six ECS services: the orchestrator and five agents"
  }
  assert {
    condition     = output.test_url == "https://platform.staging.example.com:8443"
    error_message = "test URL on the test listener"
  }
}

run "the_test_listener_needs_cidrs" {
  command = plan

  variables {
    test_listener_cidrs = []
  }

  expect_failures = [var.test_listener_cidrs]
}
