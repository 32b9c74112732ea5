# The staging environment. The `locals` below are the catalogue of what runs here, written as
# literals on purpose: tests/consistency parses them and checks deployer.toml and templates/
# against them, so a name changed on one side only fails the test suite.
terraform {
  required_version = ">= 1.11"
  required_providers {
    # 6.66+: aws_ecs_service deployment_configuration with BLUE_GREEN, bake_time_in_minutes,
    # lifecycle_hook target_type PAUSE + timeout_configuration, load_balancer advanced_configuration.
    # Only the AWS provider: generated secrets come from its ephemeral
    # aws_secretsmanager_random_password (docs/aws.md, "Secrets").
    aws = { source = "hashicorp/aws", version = "~> 6.66" }
  }

  # Partial configuration: bucket, region and kms_key_id (the state key of terraform/bootstrap,
  # so the state is written with SSE-KMS under that key, not SSE-S3) come from the committed
  # backend.tfbackend next to this file: `terraform init -backend-config=backend.tfbackend`
  # (docs/aws.md). The bucket policy refuses state written without that key. State locking uses
  # an S3 lock file, no DynamoDB table needed.
  backend "s3" {
    key          = "agentic/staging/terraform.tfstate"
    encrypt      = true
    use_lockfile = true
    # Workspace listing stays inside this environment's prefix (the plan roles may list only it).
    workspace_key_prefix = "agentic/staging/workspaces"
  }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = {
      Project     = "agentic"
      Environment = "staging"
      ManagedBy   = "terraform"
    }
  }
}

locals {
  environment  = "staging"
  cluster_name = "agentic-staging"

  # ECS services by service name. The orchestrator is load-balanced and released with ECS native
  # BLUE_GREEN (PAUSE hook after test traffic moved); the agents are headless and ROLLING.
  ecs_services = {
    "orchestrator" = {
      container_name = "orchestrator", container_port = 3000, command = ["orchestrator"]
      load_balanced  = true, strategy = "BLUE_GREEN", pause_stages = ["POST_TEST_TRAFFIC_SHIFT"]
      cpu            = 1024, memory = 2048, desired_count = 2, min_count = 1, max_count = 6
    }
    "agent-scaffold" = {
      container_name = "agent-scaffold", command = ["agent", "--kind", "scaffold"], agent_kind = "scaffold"
      load_balanced  = false, strategy = "ROLLING", pause_stages = []
      cpu            = 512, memory = 1024, desired_count = 2, min_count = 1, max_count = 10, spot_weight = 3
    }
    "agent-validation" = {
      container_name = "agent-validation", command = ["agent", "--kind", "validation"], agent_kind = "validation"
      load_balanced  = false, strategy = "ROLLING", pause_stages = []
      cpu            = 512, memory = 1024, desired_count = 2, min_count = 1, max_count = 10, spot_weight = 3
    }
    "agent-e2e" = {
      container_name = "agent-e2e", command = ["agent", "--kind", "e2e"], agent_kind = "e2e"
      load_balanced  = false, strategy = "ROLLING", pause_stages = []
      cpu            = 512, memory = 2048, desired_count = 2, min_count = 1, max_count = 10, spot_weight = 3
    }
    "agent-integration" = {
      container_name = "agent-integration", command = ["agent", "--kind", "integration"], agent_kind = "integration"
      load_balanced  = false, strategy = "ROLLING", pause_stages = []
      cpu            = 512, memory = 1024, desired_count = 2, min_count = 1, max_count = 10, spot_weight = 3
    }
    "agent-deployment" = {
      container_name = "agent-deployment", command = ["agent", "--kind", "deployment"], agent_kind = "deployment"
      load_balanced  = false, strategy = "ROLLING", pause_stages = []
      cpu            = 512, memory = 1024, desired_count = 2, min_count = 1, max_count = 10, spot_weight = 3
    }
  }

  # The one-off task the deployer runs (RunTask) before it updates any service.
  migration_task = {
    family = "agentic-staging-migrate", container_name = "migrate", command = ["migrate"], cpu = 512, memory = 1024
  }
}

module "platform" {
  source = "../../modules/platform"

  name                = local.cluster_name
  environment         = local.environment
  production          = false
  vpc_cidr            = "10.40.0.0/16"
  az_count            = 2
  services            = local.ecs_services
  migration_task      = local.migration_task
  bake_time_minutes   = 2
  ecr_repository_name = "agentic-platform"
  region              = var.region
  certificate_arn     = var.certificate_arn
  domain_name         = var.domain_name
  github_repository   = var.github_repository
  image_tag           = var.image_tag
  state_bucket        = var.state_bucket
  state_kms_key_arn   = var.state_kms_key_arn

  create_ecr_repository = var.create_ecr_repository
  test_listener_cidrs   = var.test_listener_cidrs
  secret_versions       = var.secret_versions
  plan_pull_requests    = true
}
