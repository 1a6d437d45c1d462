output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "IPv4 CIDR of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "availability_zones" {
  description = "Zones the subnets are spread over, in subnet order."
  value       = local.azs
}

output "public_subnet_ids" {
  description = "Public subnets (internet-facing load balancers), one per zone."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnets (nodes, pods, internal load balancers), one per zone."
  value       = aws_subnet.private[*].id
}

output "default_security_group_id" {
  description = "The VPC's default security group, held with no rules."
  value       = aws_default_security_group.this.id
}

output "flow_log_group_name" {
  description = "CloudWatch log group of the VPC flow logs, or null when flow logs are off."
  value       = one(aws_cloudwatch_log_group.flow_logs[*].name)
}
