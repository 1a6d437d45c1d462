# Nothing target-specific here: against an emulator the standard AWS_ENDPOINT_URL and
# credential environment variables redirect the provider.
provider "aws" {
  region = var.region

  default_tags {
    tags = local.tags
  }
}
