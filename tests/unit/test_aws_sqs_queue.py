"""``aws-sqs-queue``: parameters as KEDA reads them, metric names, sharing, and measure()."""

from __future__ import annotations

from typing import Any

import pytest
from botocore import exceptions as boto

from scalers import aws, aws_identity, aws_sqs_queue
from scalers.clients import Clients
from scalers.errors import (
    Problems,
    SourceResponseError,
    SourceTimeout,
    SourceUnreachable,
)
from scalers.identity import PodIdentity
from scalers.params import TriggerInputs

P = "triggers[0].metadata"
URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs"
BASE = {"queueURL": URL, "awsRegion": "eu-west-1"}
KEYS = {"awsAccessKeyID": "AKIAUNITTEST", "awsSecretAccessKey": "very-secret-key"}
OTHERWISE = (
    " (or give awsRoleArn or a podIdentity, or set identityOwner: operator to use the "
    "adapter's own AWS identity)"
)
KEY_REQUIRED = (
    f"{P}.awsAccessKeyID: is required in the trigger's authentication or with "
    "awsAccessKeyIDFromEnv" + OTHERWISE
)
SECRET_REQUIRED = (
    f"{P}.awsSecretAccessKey: is required in the trigger's authentication or with "
    "awsSecretAccessKeyFromEnv" + OTHERWISE
)
ROLE = "arn:aws:iam::123456789012:role/reader"


def create(
    metadata: dict[str, str],
    auth: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    pod: PodIdentity | None = None,
) -> tuple[aws_sqs_queue.AwsSqsQueueScaler | None, list[str]]:
    problems = Problems()
    inputs = TriggerInputs(
        metadata, env or {}, KEYS if auth is None else auth, path=P, pod_identity=pod
    )
    scaler = aws_sqs_queue.KIND.create(inputs, problems)
    assert scaler is None or isinstance(scaler, aws_sqs_queue.AwsSqsQueueScaler)
    return scaler, [str(p) for p in problems]


def built(
    change: dict[str, str] | None = None,
    *,
    auth: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    pod: PodIdentity | None = None,
) -> aws_sqs_queue.AwsSqsQueueScaler:
    scaler, problems = create({**BASE, **(change or {})}, auth, env, pod)
    assert problems == []
    assert scaler is not None
    return scaler


# Parameters.


def test_defaults_are_keda_s() -> None:
    s = built()
    assert (s.target, s.activation_target) == (5.0, 0.0)
    assert s.counted == ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
    assert s.meta.identity_owner == "pod"
    assert s.query.identity == aws_identity.AwsIdentity(
        "eu-west-1", None, aws_identity.AwsCredentials("AKIAUNITTEST", "very-secret-key")
    )
    assert s.query.queue_url == URL
    assert s.value_label == "messages"


@pytest.mark.parametrize(
    ("flags", "counted"),
    [
        ({"scaleOnInFlight": "false"}, ("ApproximateNumberOfMessages",)),
        (
            {"scaleOnDelayed": "true"},
            (
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ),
        ),
        (
            {"scaleOnInFlight": "false", "scaleOnDelayed": "true"},
            ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"),
        ),
    ],
)
def test_flags_choose_the_counted_attributes(
    flags: dict[str, str], counted: tuple[str, ...]
) -> None:
    assert built(flags).counted == counted


@pytest.mark.parametrize(
    ("url", "metric"),
    [
        (URL, "aws-sqs-jobs"),
        (URL + ".fifo", "aws-sqs-jobs-fifo"),
        ("http://127.0.0.1:4566/000000000000/my_queue", "aws-sqs-my_queue"),
        ("http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/q", "aws-sqs-q"),
        (URL + "?tag=x", "aws-sqs-jobs"),
        ("/123456789012/jobs", "aws-sqs-jobs"),
        ("jobs", "aws-sqs-jobs"),  # not a URL: the queue's simple name
        ("orders.fifo", "aws-sqs-orders-fifo"),
    ],
)
def test_metric_name_is_keda_s(url: str, metric: str) -> None:
    assert built({"queueURL": url}).metric_name == metric


@pytest.mark.parametrize(
    "url",
    [
        "https://sqs.eu-west-1.amazonaws.com/jobs",
        URL + "/",
        "https://sqs.eu-west-1.amazonaws.com/1/2/jobs",
        "https://sqs.eu-west-1.amazonaws.com",
        "localhost:4566/1/jobs",  # Go reads "localhost:" as a scheme, and an opaque URL
    ],
)
def test_a_url_without_a_queue_name_is_rejected(url: str) -> None:
    assert create({**BASE, "queueURL": url}) == (
        None,
        [
            f"{P}.queueURL: cannot get the queue name from {_q(url)}: expected "
            "https://sqs.<region>.amazonaws.com/<account>/<queue>, or the queue's name"
        ],
    )


def _q(text: str) -> str:
    return f'"{text}"'


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"queueURL": ""}, f"{P}.queueURL: is required"),
        ({"awsRegion": ""}, f"{P}.awsRegion: is required"),
        ({"queueLength": "0"}, f'{P}.queueLength: "0" must be greater than 0'),
        ({"queueLength": "-3"}, f'{P}.queueLength: "-3" must be greater than 0'),
        ({"queueLength": "2.5"}, f'{P}.queueLength: "2.5" is not a whole number'),
        ({"activationQueueLength": "x"}, f'{P}.activationQueueLength: "x" is not a number'),
        (
            {"scaleOnInFlight": "maybe"},
            f'{P}.scaleOnInFlight: "maybe" is not a boolean (expected true or false)',
        ),
        (
            {"scaleOnDelayed": "sometimes"},
            f'{P}.scaleOnDelayed: "sometimes" is not a boolean (expected true or false)',
        ),
    ],
)
def test_each_keda_error(change: dict[str, str], problem: str) -> None:
    assert create({**BASE, **change}) == (None, [problem])


def test_every_problem_at_once() -> None:
    _, problems = create(
        {"queueLength": "many", "scaleOnDelayed": "maybe"},
        auth={"awsSecretAccessKey": "x"},
    )
    assert problems == [
        f"{P}.queueURL: is required",
        f"{P}.awsRegion: is required",
        f'{P}.queueLength: "many" is not a number',
        f'{P}.scaleOnDelayed: "maybe" is not a boolean (expected true or false)',
        KEY_REQUIRED,
    ]
    _, problems = create({**BASE, "queueURL": URL + "/"}, auth={})
    assert problems == [
        f'{P}.queueURL: cannot get the queue name from "{URL}/": expected '
        "https://sqs.<region>.amazonaws.com/<account>/<queue>, or the queue's name",
        KEY_REQUIRED,
        SECRET_REQUIRED,
    ]


def test_sources_are_keda_s() -> None:
    s = built(
        {"queueURL": "", "queueURLFromEnv": "QUEUE", "awsRegion": ""},
        auth={"awsRegion": "ap-south-1", **KEYS},
        env={"QUEUE": URL},
    )
    assert (s.query.queue_url, s.query.identity.region) == (URL, "ap-south-1")
    # Metadata wins over authParams for awsRegion, as in KEDA's order=triggerMetadata;authParams.
    assert built(auth={"awsRegion": "ap-south-1", **KEYS}).query.identity.region == "eu-west-1"


@pytest.mark.parametrize(
    ("metadata", "auth", "env", "keys"),
    [
        ({}, KEYS, {}, ("AKIAUNITTEST", "very-secret-key", None)),
        ({}, {**KEYS, "awsSessionToken": "tok"}, {}, ("AKIAUNITTEST", "very-secret-key", "tok")),
        (
            {},
            {"awsAccessKeyId": "AKIAALIAS", "awsSecretAccessKey": "s"},
            {},
            ("AKIAALIAS", "s", None),
        ),
        (
            {"awsAccessKeyID": "AKIAMETA", "awsSecretAccessKeyFromEnv": "SECRET"},
            {},
            {"SECRET": "from-env"},
            ("AKIAMETA", "from-env", None),
        ),
        (
            {"awsAccessKeyIDFromEnv": "KEY", "awsSecretAccessKeyFromEnv": "SECRET"},
            {},
            {"KEY": "AKIAENV", "SECRET": "from-env"},
            ("AKIAENV", "from-env", None),
        ),
    ],
)
def test_static_keys_come_from_where_keda_reads_them(
    metadata: dict[str, str],
    auth: dict[str, str],
    env: dict[str, str],
    keys: tuple[str, str, str | None],
) -> None:
    creds = built(metadata, auth=auth, env=env).query.identity.credentials
    assert creds == aws_identity.AwsCredentials(*keys)


def test_a_secret_key_written_in_metadata_is_not_read() -> None:
    # KEDA reads awsSecretAccessKey only from the authentication or awsSecretAccessKeyFromEnv.
    meta = {**BASE, "awsAccessKeyID": "AKIAMETA", "awsSecretAccessKey": "in-plain-sight"}
    assert create(meta, auth={}) == (None, [SECRET_REQUIRED])


def test_pod_identity_owner_needs_both_keys() -> None:
    assert create(BASE, auth={}) == (None, [KEY_REQUIRED, SECRET_REQUIRED])
    assert create(BASE, auth={"awsAccessKeyID": "AKIA"}) == (None, [SECRET_REQUIRED])
    assert create(BASE, auth={"awsSecretAccessKey": "s"}) == (None, [KEY_REQUIRED])


def test_operator_identity_owner_needs_no_keys_and_ignores_them() -> None:
    for auth in ({}, KEYS):
        s = built({"identityOwner": "operator"}, auth=auth)
        assert s.query.identity.credentials is None


def test_any_identity_owner_but_pod_is_the_adapter_s_own_identity_as_in_keda() -> None:
    # KEDA's identityOwner has no enum: a value other than pod or empty skips the keys.
    s = built({"identityOwner": "keda"}, auth={})
    assert (s.query.identity.credentials, s.query.identity.role) == (None, None)


def test_a_bad_aws_endpoint_fails_when_polled_as_in_keda() -> None:
    s = built({"awsEndpoint": "localstack:4566"})
    assert s.query.identity.endpoint == "localstack:4566"


async def test_a_bad_aws_endpoint_is_a_failing_poll() -> None:
    s = built({"awsEndpoint": "localstack:4566"})
    clients = Clients(timeout=1)
    try:
        with pytest.raises(SourceUnreachable, match='awsEndpoint "localstack:4566" must start'):
            await s.query.run(clients)
    finally:
        await clients.aclose()


def test_an_aws_role_arn_is_assumed_by_the_adapter_s_own_identity() -> None:
    # KEDA: identityOwner pod with awsRoleArn (aws-eks puts the ServiceAccount's role there)
    # assumes it with the default chain; keys beside it are not used.
    identity = built(auth={"awsRoleArn": ROLE, **KEYS}).query.identity
    assert identity.credentials is None
    assert identity.role == aws_identity.AssumedRole(ROLE)
    assert identity.describe() == f"AWS (eu-west-1) as {ROLE}"


@pytest.mark.parametrize(
    ("pod", "auth", "role"),
    [
        (PodIdentity("aws", role_arn=ROLE), {}, aws_identity.AssumedRole(ROLE, None, True)),
        (
            PodIdentity("aws", role_arn=ROLE, external_id="ext-1"),
            {"awsRoleArn": "arn:aws:iam::1:role/other"},
            aws_identity.AssumedRole(ROLE, "ext-1", True),
        ),
        # identityOwner workload: the resolver puts the ServiceAccount's role in authParams.
        (
            PodIdentity("aws", identity_owner="workload"),
            {"awsRoleArn": ROLE},
            aws_identity.AssumedRole(ROLE, None, True),
        ),
        (PodIdentity("aws"), {}, None),
        (PodIdentity("aws"), KEYS, None),
        (PodIdentity("aws-eks"), {"awsRoleArn": ROLE}, aws_identity.AssumedRole(ROLE)),
    ],
)
def test_pod_identity_aws_is_the_adapter_s_identity_and_its_role(
    pod: PodIdentity, auth: dict[str, str], role: aws_identity.AssumedRole | None
) -> None:
    identity = built({"identityOwner": "pod"}, auth=auth, pod=pod).query.identity
    assert (identity.credentials, identity.role) == (None, role)


def test_pod_identity_aws_wins_over_identity_owner_and_needs_no_keys() -> None:
    s = built({"identityOwner": "operator"}, auth={}, pod=PodIdentity("aws", role_arn=ROLE))
    assert s.query.identity.role == aws_identity.AssumedRole(ROLE, None, True)


def test_a_pod_identity_of_another_cloud_still_needs_keys() -> None:
    assert create(BASE, auth={}, pod=PodIdentity("gcp")) == (None, [KEY_REQUIRED, SECRET_REQUIRED])


# Sharing and secrecy.


def test_triggers_on_one_queue_share_one_query_whatever_their_flags() -> None:
    a = built()
    b = built({"scaleOnInFlight": "false", "scaleOnDelayed": "true", "queueLength": "9"})
    c = built({"activationQueueLength": "3"})
    assert a.query == b.query == c.query
    assert len({a.query, b.query, c.query}) == 1


@pytest.mark.parametrize(
    ("auth", "change"),
    [
        (KEYS, {"queueURL": URL + "2"}),
        (KEYS, {"awsRegion": "eu-west-2"}),
        (KEYS, {"awsEndpoint": "http://127.0.0.1:4566"}),
        ({**KEYS, "awsSecretAccessKey": "other"}, {}),
        ({**KEYS, "awsSessionToken": "tok"}, {}),
        ({}, {"identityOwner": "operator"}),
        ({"awsRoleArn": ROLE}, {}),
    ],
)
def test_another_queue_or_identity_is_another_query(
    auth: dict[str, str], change: dict[str, str]
) -> None:
    assert built(change, auth=auth).query != built().query


def test_secrets_never_show() -> None:
    s = built(auth={**KEYS, "awsSessionToken": "session-token-value"})
    for text in (repr(s), repr(s.query), s.query.describe(), repr(s.meta), str(s.query)):
        assert "very-secret-key" not in text
        assert "session-token-value" not in text
    assert "secret_access_key" not in repr(s.meta)
    assert "session_token" not in repr(s.meta)
    assert s.query.describe() == f"SQS GetQueueAttributes {URL} at AWS (eu-west-1)"


# measure().

ANSWER = {
    "ApproximateNumberOfMessages": "7",
    "ApproximateNumberOfMessagesNotVisible": "4",
    "ApproximateNumberOfMessagesDelayed": "3",
}


@pytest.mark.parametrize(
    ("flags", "value"),
    [
        ({}, 11.0),
        ({"scaleOnInFlight": "false"}, 7.0),
        ({"scaleOnDelayed": "true"}, 14.0),
        ({"scaleOnInFlight": "false", "scaleOnDelayed": "true"}, 10.0),
    ],
)
def test_measure_adds_the_counted_attributes(flags: dict[str, str], value: float) -> None:
    assert built(flags).measure(ANSWER) == value


def test_measure_needs_only_the_counted_attributes() -> None:
    assert built({"scaleOnInFlight": "false"}).measure({"ApproximateNumberOfMessages": "2"}) == 2.0


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            {"ApproximateNumberOfMessages": "1"},
            'queue "jobs": ApproximateNumberOfMessagesNotVisible not found in the SQS queue '
            "attributes",
        ),
        (
            {**ANSWER, "ApproximateNumberOfMessages": "3.0"},
            'queue "jobs": ApproximateNumberOfMessages is "3.0", not an integer',
        ),
        ({**ANSWER, "ApproximateNumberOfMessages": ""}, 'is "", not an integer'),
        ({**ANSWER, "ApproximateNumberOfMessages": "5_000"}, 'is "5_000", not an integer'),
        ({**ANSWER, "ApproximateNumberOfMessagesNotVisible": 4}, "is 4, not an integer"),
    ],
)
def test_measure_rejects_what_is_not_a_count(answer: dict[str, Any], message: str) -> None:
    with pytest.raises(SourceResponseError) as info:
        built().measure(answer)
    assert message in str(info.value)


# botocore's failures.

IDENTITY = aws_identity.AwsIdentity(
    "eu-west-1", "http://127.0.0.1:1", aws_identity.AwsCredentials("a", "b")
)


def client_error(status: int, code: str, message: str) -> boto.ClientError:
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return boto.ClientError(response, "GetQueueAttributes")


@pytest.mark.parametrize(
    ("exc", "kind", "message"),
    [
        (boto.ReadTimeoutError(endpoint_url="u"), SourceTimeout, "what: no answer within 2s"),
        (boto.ConnectTimeoutError(endpoint_url="u"), SourceTimeout, "what: no answer within 2s"),
        (
            boto.EndpointConnectionError(endpoint_url="u"),
            SourceUnreachable,
            'what: Could not connect to the endpoint URL: "u"',
        ),
        (
            boto.NoCredentialsError(),
            SourceUnreachable,
            "what: the adapter's own AWS identity is used, and the adapter has no AWS credentials",
        ),
        (
            client_error(403, "InvalidClientTokenId", "The security token is invalid."),
            SourceResponseError,
            "what: InvalidClientTokenId: The security token is invalid. (check the AWS "
            "credentials of the trigger's authentication)",
        ),
        (
            client_error(400, "AWS.SimpleQueueService.NonExistentQueue", "gone"),
            SourceResponseError,
            "what: AWS.SimpleQueueService.NonExistentQueue: gone",
        ),
        (client_error(500, "500", ""), SourceResponseError, "what: HTTP 500"),
        (
            AttributeError("'str' has no attribute 'items'"),
            SourceResponseError,
            "what: unreadable answer",
        ),
    ],
)
async def test_botocore_failures_map_onto_the_error_tree(
    exc: Exception, kind: type[Exception], message: str
) -> None:
    error = await aws.source_error(Clients(timeout=2), "sqs", IDENTITY, exc, "what")
    assert type(error) is kind
    assert str(error).startswith(message)


async def test_a_connection_failure_discards_the_shared_client() -> None:
    clients, closed = Clients(), []

    async def open_client() -> str:
        return "client"

    async def close_client(client: str) -> None:
        closed.append(client)

    key = ("aws", "sqs", IDENTITY)
    await clients.shared(key, open_client, close_client)
    await aws.source_error(clients, "sqs", IDENTITY, boto.ReadTimeoutError(endpoint_url="u"), "")
    assert closed == []  # a slow answer is not a broken connection
    await aws.source_error(
        clients, "sqs", IDENTITY, boto.EndpointConnectionError(endpoint_url="u"), ""
    )
    assert closed == ["client"]
    await clients.aclose()
