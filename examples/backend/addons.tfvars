# Where infra/addons reads the platform's outputs when infra/platform keeps its state in S3: the same
# bucket, key and region as platform.s3.tfbackend. Pass with -var-file=../../examples/backend/addons.tfvars.
platform_state_s3 = {
  bucket = "example-terraform-state-111122223333-eu-west-1"
  key    = "eks-platform/platform.tfstate"
  region = "eu-west-1"
}
