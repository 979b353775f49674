"""KEDA's TriggerAuthentication and ClusterTriggerAuthentication (``keda.sh/v1alpha1``) as
frozen typed objects: where a trigger's authentication parameters come from.

Every source of KEDA v2.20's ``TriggerAuthenticationSpec`` is read, including those this
adapter does not act on (``azureKeyVault``, ``gcpSecretManager``): binding must be able to
say "not supported" rather than report the parameters they would have supplied as missing.
The CRD's own checks (required fields, enums, ``minItems``) are problems here, as the API
server would have refused them; what KEDA checks later (``roleArn`` with ``identityOwner:
workload``, ``filePath`` on a TriggerAuthentication) is left to resolution, where KEDA does it.

Values written in the object itself (a Vault token in ``credential.token``) are kept out of
reprs: these objects are logged and shown by ``explain``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from metrics_adapter.kube.fields import Fields
from metrics_adapter.kube.objects import ObjectMeta
from metrics_adapter.model.keda import parse_meta, spec_fields, subject_of
from scalers.errors import Problems, quote
from scalers.identity import PROVIDERS, PodIdentity

IDENTITY_OWNERS = ("keda", "workload")
VAULT_AUTHENTICATIONS = ("token", "kubernetes")
VAULT_SECRET_TYPES = ("", "secretV2", "secret", "pki")


@dataclass(frozen=True, slots=True)
class SecretTargetRef:
    """A ``secretTargetRef`` or ``configMapTargetRef`` item."""

    parameter: str
    name: str
    key: str


@dataclass(frozen=True, slots=True)
class EnvRef:
    parameter: str
    name: str
    container_name: str | None = None


@dataclass(frozen=True, slots=True)
class SecretKeyRef:
    """``valueFrom.secretKeyRef``: a credential the source itself reads from a Secret."""

    name: str
    key: str


@dataclass(frozen=True, slots=True)
class VaultPkiData:
    common_name: str = ""
    alt_names: str = ""
    ip_sans: str = ""
    uri_sans: str = ""
    other_sans: str = ""
    ttl: str = ""
    format: str = ""


@dataclass(frozen=True, slots=True)
class VaultSecret:
    parameter: str
    path: str
    key: str
    type: str = ""
    """``""`` (KEDA's generic read), ``secret`` (KV v1), ``secretV2`` (KV v2) or ``pki``."""
    pki_data: VaultPkiData = field(default_factory=VaultPkiData)


@dataclass(frozen=True, slots=True)
class VaultCredential:
    token: str = field(default="", repr=False)
    service_account: str = ""
    """A file holding the ServiceAccount JWT for ``authentication: kubernetes``."""
    service_account_name: str = ""
    """A ServiceAccount of the authentication's namespace whose token is requested instead."""


@dataclass(frozen=True, slots=True)
class HashiCorpVault:
    address: str
    authentication: str
    """``token`` or ``kubernetes``."""
    secrets: tuple[VaultSecret, ...]
    namespace: str = ""
    credential: VaultCredential | None = None
    role: str = ""
    mount: str = ""


@dataclass(frozen=True, slots=True)
class AwsSecretManagerSecret:
    parameter: str
    name: str
    version_id: str = ""
    version_stage: str = ""
    secret_key: str = ""
    """A key of the secret's JSON value; empty: the whole value."""


@dataclass(frozen=True, slots=True)
class AwsSecretManagerCredentials:
    access_key: SecretKeyRef
    access_secret_key: SecretKeyRef
    access_token: SecretKeyRef | None = None


@dataclass(frozen=True, slots=True)
class AwsSecretManager:
    secrets: tuple[AwsSecretManagerSecret, ...]
    credentials: AwsSecretManagerCredentials | None = None
    pod_identity: PodIdentity | None = None
    region: str = ""


@dataclass(frozen=True, slots=True)
class BoundServiceAccountToken:
    parameter: str
    service_account_name: str


@dataclass(frozen=True, slots=True)
class OAuth2:
    """KEDA hands these to the scaler as authParams; the scaler fetches the token."""

    client_id: str
    token_url: str
    type: str = "clientCredentials"
    client_secret: SecretKeyRef | None = None
    scopes: tuple[str, ...] = ()
    token_url_params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class TriggerAuthentication:
    """A TriggerAuthentication, or a ClusterTriggerAuthentication when ``cluster`` is set."""

    meta: ObjectMeta
    cluster: bool = False
    secret_target_refs: tuple[SecretTargetRef, ...] = ()
    config_map_target_refs: tuple[SecretTargetRef, ...] = ()
    env: tuple[EnvRef, ...] = ()
    pod_identity: PodIdentity | None = None
    """``podIdentity``, for a provider other than ``none``."""
    file_path: str = ""
    """A JSON ``map[string]string`` of authParams, relative to the adapter's root directory
    (ClusterTriggerAuthentication only, as in KEDA)."""
    bound_service_account_tokens: tuple[BoundServiceAccountToken, ...] = ()
    hashicorp_vault: HashiCorpVault | None = None
    aws_secret_manager: AwsSecretManager | None = None
    oauth2: OAuth2 | None = None
    azure_key_vault: tuple[str, ...] | None = None
    """The parameters it would supply (``None``: absent). The source is not supported:
    binding says so, rather than report those parameters missing."""
    gcp_secret_manager: tuple[str, ...] | None = None
    warnings: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return "ClusterTriggerAuthentication" if self.cluster else "TriggerAuthentication"

    @property
    def pod_identity_provider(self) -> str:
        return self.pod_identity.provider if self.pod_identity else "none"


SPEC_FIELDS = frozenset(
    {
        "podIdentity",
        "secretTargetRef",
        "configMapTargetRef",
        "env",
        "filePath",
        "hashiCorpVault",
        "azureKeyVault",
        "gcpSecretManager",
        "awsSecretManager",
        "boundServiceAccountToken",
        "oauth2",
    }
)


def parse_trigger_authentication(raw: Mapping[str, object]) -> TriggerAuthentication:
    """Parse a TriggerAuthentication or ClusterTriggerAuthentication (by ``kind``)."""
    cluster = raw.get("kind") == "ClusterTriggerAuthentication"
    kind = "ClusterTriggerAuthentication" if cluster else "TriggerAuthentication"
    problems, warnings = Problems(), list[str]()
    meta = parse_meta(raw, problems, namespaced=not cluster)
    spec = spec_fields(raw, problems, warnings)
    spec.warn_unknown(SPEC_FIELDS)
    auth = TriggerAuthentication(
        meta=meta,
        cluster=cluster,
        secret_target_refs=_target_refs(spec, "secretTargetRef"),
        config_map_target_refs=_target_refs(spec, "configMapTargetRef"),
        env=tuple(
            EnvRef(
                parameter=_required(e, "parameter"),
                name=_required(e, "name"),
                container_name=e.string("containerName"),
            )
            for e in spec.items("env")
        ),
        pod_identity=_pod_identity(spec.child("podIdentity")) if spec.has("podIdentity") else None,
        file_path=spec.string("filePath", "") or "",
        bound_service_account_tokens=tuple(
            BoundServiceAccountToken(_required(b, "parameter"), _required(b, "serviceAccountName"))
            for b in spec.items("boundServiceAccountToken")
        ),
        hashicorp_vault=_vault(spec.child("hashiCorpVault"))
        if spec.has("hashiCorpVault")
        else None,
        aws_secret_manager=(
            _aws(spec.child("awsSecretManager")) if spec.has("awsSecretManager") else None
        ),
        oauth2=_oauth2(spec.child("oauth2")) if spec.has("oauth2") else None,
        azure_key_vault=_present(spec, "azureKeyVault", ("vaultUri",), "name"),
        gcp_secret_manager=_present(spec, "gcpSecretManager", (), "id"),
        warnings=tuple(warnings),
    )
    problems.raise_for(subject_of(kind, raw, namespaced=not cluster))
    return auth


def _required(f: Fields, key: str) -> str:
    return f.string(key, "", required=True) or ""


def _target_refs(spec: Fields, key: str) -> tuple[SecretTargetRef, ...]:
    return tuple(
        SecretTargetRef(_required(r, "parameter"), _required(r, "name"), _required(r, "key"))
        for r in spec.items(key)
    )


def _listed(f: Fields, key: str) -> list[Fields]:
    """A list the CRD requires with at least one item."""
    value = f.raw.get(key)
    if value is None:
        f.problems.add(f.at(key), "is required")
    elif value == []:
        f.problems.add(f.at(key), "must have at least 1 item")
    return list(f.items(key))


def _pod_identity(f: Fields) -> PodIdentity | None:
    provider = f.string("provider", "", required=True) or ""
    if provider and provider not in PROVIDERS:
        f.problems.add(f.at("provider"), f"{quote(provider)} is not one of: {', '.join(PROVIDERS)}")
    owner = f.enum("identityOwner", IDENTITY_OWNERS, "keda")
    identity = PodIdentity(
        provider=provider,
        role_arn=f.string("roleArn"),
        external_id=f.string("externalID"),
        identity_owner=owner,
        identity_id=_optional(f, "identityId"),
        identity_tenant_id=_optional(f, "identityTenantId"),
        identity_authority_host=_optional(f, "identityAuthorityHost"),
    )
    return None if provider in ("", "none") else identity


def _optional(f: Fields, key: str) -> str | None:
    """A ``*string``: absent is ``None``, ``""`` stays ``""`` (KEDA tells them apart)."""
    return "" if f.raw.get(key) == "" else f.string(key)


def _secret_key_ref(f: Fields) -> SecretKeyRef:
    ref = f.child("valueFrom").child("secretKeyRef")
    return SecretKeyRef(_required(ref, "name"), _required(ref, "key"))


def _required_ref(f: Fields, key: str) -> SecretKeyRef:
    if not f.has(key):
        f.problems.add(f.at(key), "is required")
        return SecretKeyRef("", "")
    return _secret_key_ref(f.child(key))


def _vault(f: Fields) -> HashiCorpVault:
    credential = None
    if f.has("credential"):
        c = f.child("credential")
        credential = VaultCredential(
            token=c.string("token", "") or "",
            service_account=c.string("serviceAccount", "") or "",
            service_account_name=c.string("serviceAccountName", "") or "",
        )
    secrets = []
    for s in _listed(f, "secrets"):
        pki = s.child("pkiData")
        secrets.append(
            VaultSecret(
                parameter=_required(s, "parameter"),
                path=_required(s, "path"),
                key=_required(s, "key"),
                type=s.enum("type", VAULT_SECRET_TYPES, ""),
                pki_data=VaultPkiData(
                    *(
                        pki.string(k, "") or ""
                        for k in (
                            "commonName",
                            "altNames",
                            "ipSans",
                            "uriSans",
                            "otherSans",
                            "ttl",
                            "format",
                        )
                    )
                ),
            )
        )
    authentication = _required(f, "authentication")
    if authentication and authentication not in VAULT_AUTHENTICATIONS:
        f.problems.add(
            f.at("authentication"),
            f"{quote(authentication)} is not one of: {', '.join(VAULT_AUTHENTICATIONS)}",
        )
    return HashiCorpVault(
        address=_required(f, "address"),
        authentication=authentication,
        secrets=tuple(secrets),
        namespace=f.string("namespace", "") or "",
        credential=credential,
        role=f.string("role", "") or "",
        mount=f.string("mount", "") or "",
    )


def _aws(f: Fields) -> AwsSecretManager:
    credentials = None
    if f.has("credentials"):
        c = f.child("credentials")
        credentials = AwsSecretManagerCredentials(
            access_key=_required_ref(c, "accessKey"),
            access_secret_key=_required_ref(c, "accessSecretKey"),
            access_token=_secret_key_ref(c.child("accessToken")) if c.has("accessToken") else None,
        )
    return AwsSecretManager(
        secrets=tuple(
            AwsSecretManagerSecret(
                parameter=_required(s, "parameter"),
                name=_required(s, "name"),
                version_id=s.string("versionId", "") or "",
                version_stage=s.string("versionStage", "") or "",
                secret_key=s.string("secretKey", "") or "",
            )
            for s in _listed(f, "secrets")
        ),
        credentials=credentials,
        pod_identity=_pod_identity(f.child("podIdentity")) if f.has("podIdentity") else None,
        region=f.string("region", "") or "",
    )


def _oauth2(f: Fields) -> OAuth2:
    """Read as written: KEDA's webhook rules on ``type``, ``clientId`` and ``tokenUrl`` (in
    :mod:`metrics_adapter.admission.authentication`, with KEDA's words) are not repeated."""
    return OAuth2(
        client_id=f.string("clientId", "") or "",
        token_url=f.string("tokenUrl", "") or "",
        type=f.string("type", "clientCredentials") or "clientCredentials",
        client_secret=_secret_key_ref(f.child("clientSecret")) if f.has("clientSecret") else None,
        scopes=f.strings("scopes"),
        token_url_params=tuple(sorted(f.string_map("tokenUrlParams").items())),
    )


def _present(
    spec: Fields, key: str, required: tuple[str, ...], item_key: str
) -> tuple[str, ...] | None:
    """An unsupported source's parameters; only the CRD's required fields are checked."""
    if not spec.has(key):
        return None
    f = spec.child(key)
    for name in required:
        if not f.has(name):
            f.problems.add(f.at(name), "is required")
    parameters = []
    for s in _listed(f, "secrets"):
        parameters.append(_required(s, "parameter"))
        _required(s, item_key)
    return tuple(parameters)
