# infra/platform's outputs, read from wherever that root keeps its state: the local file (default, as the
# harness and the emulator use it) or the S3 backend of examples/backend (a real account, shared state).
data "terraform_remote_state" "platform" {
  backend = var.platform_state_s3 == null ? "local" : "s3"

  # Both branches are maps of strings: Terraform needs one type for the two sides of a conditional.
  config = var.platform_state_s3 == null ? tomap({
    path = var.platform_state_path
    }) : tomap({
    bucket = var.platform_state_s3.bucket
    key    = var.platform_state_s3.key
    region = var.platform_state_s3.region
  })

  lifecycle {
    precondition {
      condition     = var.platform_state_s3 != null || fileexists(var.platform_state_path)
      error_message = "platform_state_path: no state file at ${var.platform_state_path}. Apply infra/platform first, or pass -var platform_state_path=<path to its state>, or platform_state_s3 when it keeps its state in S3 (examples/backend)."
    }
  }
}

locals {
  platform = data.terraform_remote_state.platform.outputs
}
