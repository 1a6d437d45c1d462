# Offline checks of infra/platform with a mocked AWS provider: `terraform -chdir=infra/platform test`
# (needs only `terraform init -backend=false`). Each guard has a run that passes and one that trips it.

mock_provider "aws" {
  mock_data "aws_availability_zones" {
    defaults = {
      names = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    }
  }

  # Mocks return random strings; IAM arguments are validated as JSON even at plan time.
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }

  mock_data "aws_partition" {
    defaults = {
      partition  = "aws"
      dns_suffix = "amazonaws.com"
    }
  }

  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }

  mock_resource "aws_eks_cluster" {
    defaults = {
      arn                   = "arn:aws:eks:eu-west-1:123456789012:cluster/eks-platform"
      certificate_authority = [{ data = "Y2VydGlmaWNhdGU=" }]
    }
  }
}

variables {
  api_public_cidrs = ["198.51.100.0/24"]
}

run "aws_target_builds_everything" {
  command = plan

  assert {
    condition     = length(output.unsupported_on_target) == 0
    error_message = "target aws must not leave anything out"
  }

  assert {
    condition     = length(module.cluster.ops_node_labels) == 2 && module.cluster.ops_node_labels["workload-type"] == "ops" && module.cluster.ops_node_labels["karpenter.sh/controller"] == "true"
    error_message = "ops nodes must carry workload-type=ops and karpenter.sh/controller=true"
  }

  assert {
    condition     = output.tags == { project = "eks-platform" }
    error_message = "without run id and expiry the only tag is project=eks-platform"
  }
}

run "emulator_target_leaves_out_what_moto_lacks" {
  command = plan

  variables {
    target = "emulator"
  }

  assert {
    condition     = toset(keys(output.unsupported_on_target)) == toset(["eks_access_entries", "eks_pod_identity_associations", "eks_addons", "kubernetes"])
    error_message = "the emulator target must report the capabilities from infra/targets.yaml"
  }
}

run "run_tags_are_added_when_given" {
  command = plan

  variables {
    run_id     = "r20261125-1200-ab12"
    expires_at = "2026-11-25T16:00:00Z"
    tags       = { owner = "platform-team" }
  }

  assert {
    condition     = output.tags == { project = "eks-platform", "run-id" = "r20261125-1200-ab12", "expires-at" = "2026-11-25T16:00:00Z", owner = "platform-team" }
    error_message = "tags must be var.tags plus project, run-id and expires-at"
  }
}

run "api_open_to_the_internet_is_rejected" {
  command = plan

  variables {
    api_public_cidrs = ["0.0.0.0/0"]
  }

  expect_failures = [var.api_public_cidrs]
}

run "empty_api_cidrs_are_rejected" {
  command = plan

  variables {
    api_public_cidrs = []
  }

  expect_failures = [var.api_public_cidrs]
}

run "malformed_api_cidr_is_rejected" {
  command = plan

  variables {
    api_public_cidrs = ["198.51.100.0/33"]
  }

  expect_failures = [var.api_public_cidrs]
}

run "unknown_target_is_rejected" {
  command = plan

  variables {
    target = "localstack"
  }

  expect_failures = [var.target]
}

run "graviton_ops_types_are_rejected" {
  command = plan

  variables {
    ops_instance_types = ["m7i.large", "m7g.large"]
  }

  expect_failures = [var.ops_instance_types]
}

run "cluster_name_too_long_for_role_names_is_rejected" {
  command = plan

  variables {
    cluster_name = "a-cluster-name-that-is-far-too-long-for-iam"
  }

  expect_failures = [var.cluster_name]
}

run "bad_expiry_is_rejected" {
  command = plan

  variables {
    expires_at = "tomorrow"
  }

  expect_failures = [var.expires_at]
}
