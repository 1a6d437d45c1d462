"""Tag, label and annotation keys that more than one room reads (the AWS side, the Kubernetes side, the targets,
the gate): one definition each. Keys only one module reads stay in that module."""

DISCOVERY_TAG = "karpenter.sh/discovery"  # on subnets and the node security group Karpenter selects
NODEPOOL_LABEL = "karpenter.sh/nodepool"  # on Karpenter's nodes (label) and their instances (tag)
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"  # spot / on-demand: node label and NodePool requirement key
ELB_SUBNET_TAG = "kubernetes.io/role/elb"  # public subnets for internet-facing ALBs
INTERNAL_ELB_SUBNET_TAG = "kubernetes.io/role/internal-elb"  # private subnets for internal ALBs
# On what Karpenter makes for an EC2NodeClass (launch templates, instance profiles); its IAM policy conditions on it.
NODECLASS_TAG = "karpenter.k8s.aws/ec2nodeclass"
