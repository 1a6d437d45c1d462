# S3 state for a real account, instead of the local terraform.tfstate both roots use by default.
#
# Copy this file into infra/platform and into infra/addons (the name must end in _override.tf: Terraform
# then lets its backend block replace the roots' `backend "local" {}`). Bucket, key and region come from
# the *.s3.tfbackend files beside it:
#
#   cp examples/backend/backend_override.tf infra/platform/ && cp examples/backend/backend_override.tf infra/addons/
#   terraform -chdir=infra/platform init -backend-config=../../examples/backend/platform.s3.tfbackend
#   terraform -chdir=infra/addons   init -backend-config=../../examples/backend/addons.s3.tfbackend
#
# and give infra/addons the platform's state location (-var-file=../../examples/backend/addons.tfvars).
# Needs Terraform >= 1.10: use_lockfile locks the state with a <key>.tflock object written with an S3
# conditional write, so no DynamoDB table is needed. docs/stack.md, "Remote state", has the whole recipe.
terraform {
  backend "s3" {
    use_lockfile = true
    encrypt      = true
  }
}
