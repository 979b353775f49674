"""A trigger's authentication resolved into authParams and a pod identity, as KEDA's
``ResolveAuthRefAndPodIdentity`` (``pkg/scaling/resolver/scale_resolvers.go``).

KEDA's order, later sources overwriting earlier ones: ``env``, ``configMapTargetRef``,
``secretTargetRef``, ``hashiCorpVault``, ``awsSecretManager``, ``boundServiceAccountToken``,
``oauth2``; ``filePath`` (ClusterTriggerAuthentication only) replaces all of them; then
``podIdentity`` adds ``awsRoleArn``. Sources that need a read are looked up in what the object
source has read ahead (:meth:`~metrics_adapter.binding.sources.ObjectSource.source_values`).

Unlike KEDA, which leaves a parameter empty when its source fails (and the scaler then says
it is missing), a source that cannot be used is a problem naming it: unsupported, not read
yet, or its read's error. The parameters it would have supplied are :attr:`Resolved.unresolved`
so binding does not also call them missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from metrics_adapter.binding.auth_sources import aws_secret_manager, bound_token, vault
from metrics_adapter.binding.auth_sources.base import ParameterRead, SourceRead, SourceValues
from metrics_adapter.binding.auth_sources.file_path import FileRead
from metrics_adapter.binding.sources import ObjectSource
from metrics_adapter.model.authentication import (
    SecretKeyRef,
    SecretTargetRef,
    TriggerAuthentication,
)
from metrics_adapter.model.keda import ObjectRef, Trigger
from metrics_adapter.model.scaled_job import Scalable, env_container
from scalers.errors import Problems, quote
from scalers.identity import PodIdentity

EKS_ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
UNSUPPORTED_PROVIDERS = ("azure-workload", "gcp")
DEFAULT_ACCOUNT = "default"


@dataclass(frozen=True, slots=True)
class Resolved:
    params: dict[str, str] = field(default_factory=dict)
    pod_identity: PodIdentity | None = None
    unresolved: frozenset[str] = frozenset()
    """Parameters a source would supply that it could not: not problems of their own."""
    any_unresolved: bool = False
    """A source that could supply any parameter (``filePath``, a pod identity) could not
    be used: which parameters it would have supplied is unknown."""


def lookup(
    obj: Scalable, trigger: Trigger, objects: ObjectSource
) -> tuple[TriggerAuthentication | None, str]:
    """The trigger's authentication (``None``: absent or not found) and the namespace its
    Secrets and ConfigMaps are read from."""
    ref = trigger.authentication_ref
    if ref is None:
        return None, obj.ref.namespace
    if ref.kind == "ClusterTriggerAuthentication":
        cluster = objects.cluster_trigger_authentication(ref.name)
        return cluster, objects.cluster_object_namespace
    return objects.trigger_authentication(ObjectRef(obj.ref.namespace, ref.name)), obj.ref.namespace


def resolve(
    obj: Scalable, trigger: Trigger, objects: ObjectSource, problems: Problems, path: str
) -> Resolved:
    ref = trigger.authentication_ref
    if ref is None:
        return Resolved()
    auth, namespace = lookup(obj, trigger, objects)
    if auth is None:
        cluster = ref.kind == "ClusterTriggerAuthentication"
        if why := objects.unread(ref.kind, "" if cluster else namespace):
            problem = f"{ref.kind} {quote(ref.name)} is not read: {why}"
        else:
            problem = f"{ref.kind} {quote(ref.name)} not found in namespace {namespace}"
        problems.add(f"{path}.authenticationRef", problem)
        return Resolved()
    where = f"{path}.authenticationRef ({auth.kind} {ref.name})"
    params: dict[str, str] = {}
    unresolved: set[str] = set()
    for env_ref in auth.env:
        env = objects.container_env(obj, env_ref.container_name or env_container(obj))
        params[env_ref.parameter] = env.get(env_ref.name, "")
    if auth.file_path:
        params, ok = _file(auth, objects, problems, where)
        identity = _pod_identity(obj, auth, objects, problems, where, params)
        return Resolved(params, identity, any_unresolved=not ok or _unsupported_identity(auth))
    for r in auth.config_map_target_refs:
        value = objects.config_map_value(namespace, r.name, r.key)
        if value is None:
            problems.add(where, _missing(objects, "ConfigMap", namespace, r, r.parameter))
            unresolved.add(r.parameter)
        else:
            params[r.parameter] = value
    for r in auth.secret_target_refs:
        value = objects.secret_value(namespace, r.name, r.key)
        if value is not None:
            params[r.parameter] = value
        elif r.key in objects.binary_secret_keys(namespace, r.name):
            problems.add(
                where,
                f"Secret {namespace}/{r.name} key {quote(r.key)} (for parameter {r.parameter}) "
                "is not UTF-8 text",
            )
        else:
            problems.add(where, _missing(objects, "Secret", namespace, r, r.parameter))
        if value is None:
            unresolved.add(r.parameter)
    for name, parameters in unsupported(auth):
        problems.add(where, f"authentication source {name} is not supported by metrics-adapter")
        unresolved.update(parameters)
    for read in parameter_reads(auth, namespace, objects, obj.ref.namespace):
        value = _read_value(read, objects.source_values(read.read), problems, where)
        if value is None:
            unresolved.add(read.parameter)
        else:
            params[read.parameter] = value
    if auth.oauth2 is not None:
        params.update(_oauth2(auth, namespace, objects, problems, where))
    identity = _pod_identity(obj, auth, objects, problems, where, params)
    return Resolved(
        params, identity, frozenset(unresolved - params.keys()), _unsupported_identity(auth)
    )


def _unsupported_identity(auth: TriggerAuthentication) -> bool:
    return auth.pod_identity is not None and auth.pod_identity.provider in UNSUPPORTED_PROVIDERS


def _missing(
    objects: ObjectSource,
    kind: str,
    namespace: str,
    ref: SecretTargetRef | SecretKeyRef,
    parameter: str,
) -> str:
    """Why the key ``ref`` names gave no value: the object is not read here, or lacks it."""
    if why := objects.unread(kind, namespace):
        return f"{kind} {namespace}/{ref.name} (for parameter {parameter}) is not read: {why}"
    return f"{kind} {namespace}/{ref.name} has no key {quote(ref.key)} (for parameter {parameter})"


def _file(
    auth: TriggerAuthentication, objects: ObjectSource, problems: Problems, where: str
) -> tuple[dict[str, str], bool]:
    if not auth.cluster:  # KEDA's words
        problems.add(
            where,
            f"filePath is only supported for ClusterTriggerAuthentication, got kind: {auth.kind}",
        )
        return {}, False
    read = FileRead(auth.file_path)
    state = objects.source_values(read)
    if isinstance(state, SourceValues):
        return dict(state.values), True
    problems.add(where, str(state) if state is not None else f"{read.describe()}: not read yet")
    return {}, False


def _read_value(
    read: ParameterRead,
    state: SourceValues | Exception | None,
    problems: Problems,
    where: str,
) -> str | None:
    described = read.read.describe()
    if state is None:
        problems.add(where, f"{described}: not read yet (for parameter {read.parameter})")
        return None
    if not isinstance(state, SourceValues):
        problems.add(where, f"{state} (for parameter {read.parameter})")
        return None
    value = state.values.get(read.key)
    if value is None:
        problems.add(
            where, f"{described} has no key {quote(read.key)} (for parameter {read.parameter})"
        )
    return value


def _oauth2(
    auth: TriggerAuthentication,
    namespace: str,
    objects: ObjectSource,
    problems: Problems,
    where: str,
) -> dict[str, str]:
    """KEDA hands oauth2's fields to the scaler under these names; the scaler gets the token."""
    oauth2 = auth.oauth2
    assert oauth2 is not None
    params = {"oauthTokenURI": oauth2.token_url, "clientID": oauth2.client_id}
    secret = oauth2.client_secret
    if secret is not None:
        value = objects.secret_value(namespace, secret.name, secret.key)
        if value is None:
            problems.add(where, _missing(objects, "Secret", namespace, secret, "clientSecret"))
        else:
            params["clientSecret"] = value
    else:
        params["clientSecret"] = ""
    if oauth2.scopes:
        params["scopes"] = ",".join(oauth2.scopes)
    if oauth2.token_url_params:
        params["endpointParams"] = urlencode(oauth2.token_url_params)
    return params


def _pod_identity(
    obj: Scalable,
    auth: TriggerAuthentication,
    objects: ObjectSource,
    problems: Problems,
    where: str,
    params: dict[str, str],
) -> PodIdentity | None:
    """KEDA's ResolveAuthRefAndPodIdentity: ``awsRoleArn`` from ``roleArn`` or from the
    workload's ServiceAccount."""
    identity = auth.pod_identity
    if identity is None:
        return None
    if identity.provider in UNSUPPORTED_PROVIDERS:
        problems.add(
            where,
            f"authentication source podIdentity {identity.provider} is not supported by "
            "metrics-adapter",
        )
        return identity
    owned = identity.provider == "aws" and identity.workload_owned
    if identity.provider == "aws" and identity.role_arn:
        if owned:  # KEDA's words
            problems.add(
                where,
                "roleArn can't be set if KEDA isn't identity owner, current value: 'workload'",
            )
            return identity
        params["awsRoleArn"] = identity.role_arn
    if owned or identity.provider == "aws-eks":
        account = objects.workload_service_account(obj)
        annotations = objects.service_account_annotations(obj.ref.namespace, account)
        if annotations is None and account == DEFAULT_ACCOUNT:
            annotations = {}  # every namespace has one, if not among standalone's files
        if annotations is None:
            problems.add(
                where,
                f"podIdentity {identity.provider}: ServiceAccount {obj.ref.namespace}/{account} "
                "of the workload not found",
            )
        elif owned and EKS_ROLE_ANNOTATION not in annotations:
            problems.add(
                where,
                f"podIdentity aws: ServiceAccount {obj.ref.namespace}/{account} of the workload "
                f"has no annotation {EKS_ROLE_ANNOTATION}",
            )
        else:
            params["awsRoleArn"] = annotations.get(EKS_ROLE_ANNOTATION, "")
    return identity


def unsupported(auth: TriggerAuthentication) -> list[tuple[str, tuple[str, ...]]]:
    """The sources of ``auth`` metrics-adapter does not read, with the parameters each would
    supply."""
    return [
        (name, parameters)
        for name, parameters in (
            ("azureKeyVault", auth.azure_key_vault),
            ("gcpSecretManager", auth.gcp_secret_manager),
        )
        if parameters is not None
    ]


def parameter_reads(
    auth: TriggerAuthentication, namespace: str, objects: ObjectSource, object_namespace: str
) -> list[ParameterRead]:
    """Every read ``auth``'s sources need, in KEDA's order. ``namespace`` is the
    authentication's (a ClusterTriggerAuthentication's: the cluster object namespace), where
    its Secrets and bound tokens are; ``object_namespace`` the ScaledObject's or ScaledJob's,
    where Vault's ``credential.serviceAccountName`` token is requested, as KEDA's
    ``NewHashicorpVaultHandler`` is given it."""
    reads: list[ParameterRead] = []
    if auth.hashicorp_vault is not None:
        reads += vault.parameter_reads(auth, object_namespace, objects)
    if auth.aws_secret_manager is not None:
        reads += aws_secret_manager.parameter_reads(auth, namespace, objects)
    reads += bound_token.parameter_reads(auth, namespace, objects)
    return reads


def object_reads(obj: Scalable, objects: ObjectSource) -> set[SourceRead]:
    """Every read binding ``obj`` looks up: what to read ahead of its bind."""
    reads: set[SourceRead] = set()
    for trigger in obj.triggers:
        auth, namespace = lookup(obj, trigger, objects)
        if auth is None:
            continue
        if auth.file_path:
            if auth.cluster:
                reads.add(FileRead(auth.file_path))
            continue
        reads.update(r.read for r in parameter_reads(auth, namespace, objects, obj.ref.namespace))
    return reads
