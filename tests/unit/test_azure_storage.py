"""The Azure Storage pieces without a server: connection strings as the Go SDK reads them,
SharedKey canonicalisation and signature, the account parameters' checks, the refused
identities. Azurite accepts what is signed here (tests/integration/azure); the vectors below
are one request it accepted, with the string to sign its debug log showed for it, and one
request the Azure SDK for Go signed."""

from __future__ import annotations

import pytest

from scalers import azure_blob, azure_queue
from scalers.azure_storage import (
    DEV_CONNECTION,
    StorageAccount,
    canonical_resource,
    parse_connection_string,
    shared_key_header,
    string_to_sign,
)
from scalers.errors import Problems
from scalers.identity import PodIdentity
from scalers.params import TriggerInputs

DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def test_the_signature_azurite_accepted() -> None:
    account = parse_connection_string(DEV_CONNECTION, "queue")
    headers = {"x-ms-date": "Sun, 06 Dec 2026 06:32:24 GMT", "x-ms-version": "2021-12-02"}
    path, params = "/devstoreaccount1/nope", {"comp": "metadata"}
    resource = canonical_resource(account.account_name, path, params)
    assert string_to_sign("GET", headers, resource) == (
        "GET\n\n\n\n\n\n\n\n\n\n\n\n"
        "x-ms-date:Sun, 06 Dec 2026 06:32:24 GMT\nx-ms-version:2021-12-02\n"
        "/devstoreaccount1/devstoreaccount1/nope\ncomp:metadata"
    )
    assert shared_key_header(account, "GET", path, params, headers) == (
        "SharedKey devstoreaccount1:WlBwTGgTgln9zkzyAAEEuex+m4bZTV2a5GQK0gfiEQs="
    )


def test_the_signature_the_azure_sdk_for_go_computed() -> None:
    """azblob v1.4.1 (the SDK KEDA builds on) listing ``uploads`` under ``in/`` as the
    development account, its request captured by a transport of ours: the same header."""
    account = parse_connection_string(DEV_CONNECTION, "blob")
    headers = {
        "Accept": "application/xml",
        "x-ms-version": "2024-08-04",
        "X-Ms-Date": "Sun, 06 Dec 2026 06:59:50 GMT",
    }
    params = {"comp": "list", "delimiter": "/", "prefix": "in/", "restype": "container"}
    assert shared_key_header(account, "GET", "/devstoreaccount1/uploads", params, headers) == (
        "SharedKey devstoreaccount1:e4yG5Crx9vC8lCtG70J4KkP+6UxE80vEdKNGc1uAus0="
    )


def test_canonical_resource_as_microsofts_examples() -> None:
    """ "Authorize with Shared Key", Constructing the canonicalized resource string."""
    params = {"restype": "container", "comp": "metadata"}
    assert canonical_resource("myaccount", "/mycontainer", params) == (
        "/myaccount/mycontainer\ncomp:metadata\nrestype:container"
    )
    # names are lower-cased and sorted; values kept as they are
    assert canonical_resource("a", "/q/messages", {"PeekOnly": "true", "numofmessages": "32"}) == (
        "/a/q/messages\nnumofmessages:32\npeekonly:true"
    )


def test_string_to_sign_places_the_standard_headers_and_sorts_x_ms() -> None:
    headers = {
        "x-ms-version": "v",
        "Content-Length": "5",
        "X-MS-Blob-Type": "BlockBlob",
        "x-ms-date": "d",
        "Content-Type": "text/plain",
    }
    lines = string_to_sign("PUT", headers, "/a/c/b").split("\n")
    assert lines[0] == "PUT"
    assert lines[3] == "5" and lines[5] == "text/plain"
    assert lines[1:12].count("") == 9
    assert lines[12:] == ["x-ms-blob-type:BlockBlob", "x-ms-date:d", "x-ms-version:v", "/a/c/b"]


@pytest.mark.parametrize(
    ("text", "service", "url"),
    [
        ("AccountName=acct;AccountKey=a2V5", "queue", "https://acct.queue.core.windows.net"),
        ("AccountName=acct;AccountKey=a2V5;", "blob", "https://acct.blob.core.windows.net"),
        (
            "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=a2V5;"
            "EndpointSuffix=core.chinacloudapi.cn",
            "queue",
            "http://acct.queue.core.chinacloudapi.cn",
        ),
        (DEV_CONNECTION, "queue", "http://127.0.0.1:10001/devstoreaccount1"),
        (DEV_CONNECTION, "blob", "http://127.0.0.1:10000/devstoreaccount1"),
        (
            "QueueEndpoint=https://q.example/;SharedAccessSignature=sv=1&sig=x",
            "queue",
            "https://q.example",
        ),
    ],
)
def test_service_urls(text: str, service: str, url: str) -> None:
    assert parse_connection_string(text, service).service_url == url


def test_a_key_signs_and_a_sas_is_kept_as_query_parameters() -> None:
    keyed = parse_connection_string("AccountName=acct;AccountKey=a2V5", "blob")
    assert (keyed.account_name, keyed.account_key, keyed.sas) == ("acct", b"key", ())
    sas = parse_connection_string(
        "BlobEndpoint=https://b.example;SharedAccessSignature=?sv=2019-12-12&sig=a%2Bb", "blob"
    )
    assert sas.account_key == b"" and sas.sas == (("sv", "2019-12-12"), ("sig", "a+b"))
    assert "a+b" not in repr(sas) and "key" not in repr(keyed)
    # with both, the key wins, as in the Go SDK
    both = "AccountName=a;AccountKey=a2V5;SharedAccessSignature=sig=x"
    assert parse_connection_string(both, "blob").sas == ()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is not a storage connection string"),
        ("AccountName=a;;AccountKey=a2V5", "is not a storage connection string"),
        ("AccountKey=a2V5", "needs either AccountName or QueueEndpoint"),
        ("AccountName=a", "needs either AccountKey (with AccountName) or SharedAccessSignature"),
        ("AccountName=a;AccountKey=not base64!", "AccountKey is not base64"),
        ("QueueEndpoint=ftp://x;SharedAccessSignature=s", "is not an http:// or https:// URL"),
        ("queueendpoint=http://x;SharedAccessSignature=s", "needs either AccountName"),  # case
        ("QueueEndpoint=http://x/?sig=not base64!;AccountName=a;AccountKey=a2V5", "holds a query"),
    ],
)
def test_bad_connection_strings(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)")) as error:
        parse_connection_string(text, "queue")
    assert "not base64!" not in str(error.value)


def _create(
    kind: object, metadata: dict[str, str], auth: dict[str, str], **more: object
) -> tuple[object, list[str]]:
    problems = Problems()
    inputs = TriggerInputs(metadata, more.pop("env", {}), auth, **more)  # type: ignore[arg-type]
    built = kind.create(inputs, problems)  # type: ignore[attr-defined]
    return built, [str(p) for p in problems]


def test_a_connection_is_required_and_never_shown() -> None:
    _, problems = _create(azure_queue.KIND, {"queueName": "q"}, {})
    assert problems == [
        "metadata.connection: is required: the storage account's connection string, in the "
        "trigger's authentication or with connectionFromEnv"
    ]
    secret = "AccountName=a;AccountKey=s3cr3t"
    _, problems = _create(azure_queue.KIND, {"queueName": "q"}, {"connection": secret})
    assert problems == ["metadata.connection: the connection string AccountKey is not base64"]


def test_where_each_type_reads_the_connection_from() -> None:
    """KEDA's orders: queue authParams, triggerMetadata, resolvedEnv; blob authParams,
    resolvedEnv, triggerMetadata."""
    env = {"CONN": DEV_CONNECTION}
    other = DEV_CONNECTION.replace("10001", "20001").replace("10000", "20000")
    queue, problems = _create(azure_queue.KIND, {"queueName": "q", "connection": other}, {})
    assert not problems and isinstance(queue, azure_queue.AzureQueueScaler)
    assert queue.query.account.service_url == "http://127.0.0.1:20001/devstoreaccount1"
    meta = {"blobContainerName": "c", "connection": other, "connectionFromEnv": "CONN"}
    blob, problems = _create(azure_blob.KIND, meta, {}, env=env)
    assert not problems and isinstance(blob, azure_blob.AzureBlobScaler)
    assert blob.query.account.service_url == "http://127.0.0.1:10000/devstoreaccount1"
    blob, _ = _create(azure_blob.KIND, meta, {"connection": other}, env=env)
    assert isinstance(blob, azure_blob.AzureBlobScaler)
    assert blob.query.account.service_url == "http://127.0.0.1:20000/devstoreaccount1"


@pytest.mark.parametrize(
    ("more", "says"),
    [
        ({"cloud": "Private"}, "metadata.endpointSuffix: is required with cloud: Private"),
        ({"cloud": "Mars"}, 'metadata.cloud: "Mars" is not a known Azure cloud'),
        ({"queueLengthStrategy": "VisibleOnly"}, "is not one of: all, visibleonly"),
        ({"queueLength": "0"}, 'metadata.queueLength: "0" must be greater than 0'),
    ],
)
def test_queue_parameters_as_keda_checks_them(more: dict[str, str], says: str) -> None:
    _, problems = _create(
        azure_queue.KIND, {"queueName": "q", **more}, {"connection": DEV_CONNECTION}
    )
    assert len(problems) == 1 and says in problems[0]


def test_known_clouds_pass() -> None:
    for cloud in ("AzurePublicCloud", "azurechinacloud", "AZUREUSGOVERNMENTCLOUD"):
        built, problems = _create(
            azure_queue.KIND, {"queueName": "q", "cloud": cloud}, {"connection": DEV_CONNECTION}
        )
        assert built is not None and not problems
    built, problems = _create(
        azure_queue.KIND,
        {"queueName": "q", "cloud": "private", "endpointSuffix": "core.example"},
        {"connection": DEV_CONNECTION},
    )
    assert built is not None and not problems


@pytest.mark.parametrize(
    ("provider", "says"),
    [
        ("azure-workload", "Azure AD workload identity is not supported by metrics-adapter"),
        ("aws", "KEDA supports only none and azure-workload"),
    ],
)
def test_a_pod_identity_is_refused_by_name(provider: str, says: str) -> None:
    for kind, meta in (
        (azure_queue.KIND, {"queueName": "q", "accountName": "acct"}),
        (azure_blob.KIND, {"blobContainerName": "c", "accountName": "acct"}),
    ):
        built, problems = _create(kind, meta, {}, pod_identity=PodIdentity(provider))
        assert built is None
        assert problems[0] == (
            f"authParams: podIdentity {provider} cannot authenticate {kind.type_name} ({says}): "
            "give the storage account's connection string (connection) instead"
        )


def test_an_invalid_glob_is_named() -> None:
    meta = {"blobContainerName": "c", "globPattern": "in/[a-z0-9]"}
    _, problems = _create(azure_blob.KIND, meta, {"connection": DEV_CONNECTION})
    assert problems == [
        'metadata.globPattern: "in/[a-z0-9]" is not a glob pattern: expected close range character'
    ]


def test_metric_names_are_normalised() -> None:
    built, _ = _create(azure_queue.KIND, {"queueName": "a.b"}, {"connection": DEV_CONNECTION})
    assert (
        isinstance(built, azure_queue.AzureQueueScaler) and built.metric_name == "azure-queue-a-b"
    )


def test_the_account_is_compared_whole() -> None:
    a = StorageAccount("http://x", "n", b"k")
    assert a == StorageAccount("http://x", "n", b"k") and a != StorageAccount("http://x", "n", b"j")
