terraform {
  # 1.7: the oldest Terraform this repository proves anything with (`terraform test` with mock
  # providers, infra/platform/tests). The optional S3 backend (examples/backend) needs 1.10 for
  # use_lockfile; that requirement lives with the example, as local state does not have it.
  required_version = ">= 1.7.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # State path comes from -backend-config=path=... (the harness puts it in the run directory);
  # without it Terraform uses terraform.tfstate in this folder.
  backend "local" {}
}
