"""The AWS side: boto3 clients bound to a target, the moto server that stands in for AWS offline, the pure
judges over AWS API answers, and the tag sweep (with its `harness sweep` command)."""
