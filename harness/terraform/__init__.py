"""Running Terraform (or OpenTofu): the CLI runner and the AWS provider's installation."""
