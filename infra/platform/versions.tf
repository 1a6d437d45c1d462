terraform {
  required_version = ">= 1.6.0"

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
