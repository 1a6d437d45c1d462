"""Before an e2e run creates anything: what it will create, its rough hourly cost, and the user's confirmation.

Which account and region a run may touch is checked on the AWS side (harness.aws.clients), because
`harness down` and `harness sweep` check the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from harness.e2e.stages import STAGES
from harness.errors import InputError
from harness.project import emulated
from harness.run import Run

# Rough on-demand list prices in USD per hour (us-east-1/eu-west-1 are within ~10% of these).
HOURLY_PRICES = {
    "eks_control_plane": 0.10,
    "ops_node_m7i_large": 0.1008,
    "nat_gateway": 0.045,
    "public_ipv4": 0.005,
    "alb": 0.0225 + 0.008,  # hour + one LCU
    "spot_node_xlarge": 0.07,  # c/m/r xlarge spot, typical
}


@dataclass(frozen=True)
class CostLine:
    what: str
    count: float
    hourly: float

    @property
    def total(self) -> float:
        return self.count * self.hourly


def cost_lines(ops_nodes: int = 2, spot_nodes: int = 2, stages: Sequence[str] = STAGES) -> list[CostLine]:
    """What the run creates that costs money per hour (pure; rough list prices, see HOURLY_PRICES)."""
    lines = [
        CostLine("EKS control plane", 1, HOURLY_PRICES["eks_control_plane"]),
        CostLine("ops node group instances (m7i.large, on-demand)", ops_nodes, HOURLY_PRICES["ops_node_m7i_large"]),
        CostLine("NAT gateway (plus $0.045/GB processed)", 1, HOURLY_PRICES["nat_gateway"]),
        CostLine("public IPv4 addresses (NAT, ALB)", 3, HOURLY_PRICES["public_ipv4"]),
    ]
    if "addons" in stages:
        lines.append(CostLine("Application Load Balancer for game-2048", 1, HOURLY_PRICES["alb"]))
    if "karpenter" in stages:
        lines.append(
            CostLine(
                "Karpenter spot nodes during the experiment (c/m/r xlarge)",
                spot_nodes,
                HOURLY_PRICES["spot_node_xlarge"],
            )
        )
    return lines


def creation_summary(run: Run, region: str, account: str, stages: Sequence[str], max_minutes: float) -> list[str]:
    lines = cost_lines(stages=stages)
    hourly = sum(line.total for line in lines)
    out = [
        f"run {run.id}: target {run.target}, account {account}, region {region}",
        f"stages: {', '.join(stages)}",
        f"creates (every resource tagged project=eks-platform, run-id={run.id}, expires-at={run.expires_at}):",
        "  VPC (public and private subnets across zones, 1 NAT gateway), EKS cluster with KMS secrets encryption",
        "  and control-plane log group, ops managed node group, IAM roles (Pod Identity), Karpenter interruption queue",
    ]
    if "addons" in stages:
        out.append("  add-ons: AWS Load Balancer Controller, Argo CD, Karpenter; Argo CD then creates the game's ALB")
    if "karpenter" in stages:
        out.append("  Karpenter spot instances for the scale-out experiment (removed again by consolidation)")
    out += [f"  ~${line.total:.3f}/h  {line.what}" + (f" x{line.count:g}" if line.count != 1 else "") for line in lines]
    watchdog_cost = hourly * max_minutes / 60
    if emulated(run.target):
        out.append(f"cost: none on the emulator (the same on aws: ~${hourly:.2f}/hour)")
    else:
        out.append(
            f"rough cost: ~${hourly:.2f}/hour; the watchdog tears down after {max_minutes:g} min "
            f"(<= ~${watchdog_cost:.2f})"
        )
    return out


def confirm(yes: bool, stdin: TextIO, ask: Callable[[str], str], account: str) -> None:
    """--yes, or the user types the account id at a terminal; no terminal and no --yes: refuse."""
    if yes:
        return
    if not stdin.isatty():
        raise InputError("no terminal to confirm on (stdin is not a TTY): pass --yes to create these resources")
    answer = ask(f"type the account id {account} to create these resources (anything else aborts): ").strip()
    if answer != account:
        raise InputError("not confirmed: nothing was created")
