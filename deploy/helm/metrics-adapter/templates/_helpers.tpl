{{/* The chart's name, or nameOverride. */}}
{{- define "metrics-adapter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The name of every object: the release name when it already says metrics-adapter. */}}
{{- define "metrics-adapter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "metrics-adapter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "metrics-adapter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "metrics-adapter.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "metrics-adapter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: metrics-adapter
{{- end }}

{{- define "metrics-adapter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "metrics-adapter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The APIService is one per cluster, named by the API it serves. */}}
{{- define "metrics-adapter.apiServiceName" -}}
v1beta1.external.metrics.k8s.io
{{- end }}

{{/* certificates.mode, checked once: a typo fails the render instead of a silent default. */}}
{{- define "metrics-adapter.certMode" -}}
{{- $mode := .Values.certificates.mode }}
{{- if not (has $mode (list "selfManaged" "certManager" "secret")) }}
{{- fail (printf "certificates.mode: %q is not one of selfManaged, certManager, secret" $mode) }}
{{- end }}
{{- $mode }}
{{- end }}

{{- define "metrics-adapter.certificateName" -}}
{{- printf "%s-serving" (include "metrics-adapter.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "metrics-adapter.webhookConfigurationName" -}}
{{- include "metrics-adapter.fullname" . }}
{{- end }}

{{/* webhooks.failurePolicy, checked once: kube-apiserver would refuse anything else. */}}
{{- define "metrics-adapter.failurePolicy" -}}
{{- $policy := .Values.webhooks.failurePolicy }}
{{- if not (has $policy (list "Ignore" "Fail")) }}
{{- fail (printf "webhooks.failurePolicy: %q is not one of Ignore, Fail" $policy) }}
{{- end }}
{{- $policy }}
{{- end }}

{{/* watchNamespace (KEDA's value: comma-separated) as a list, blanks dropped. */}}
{{- define "metrics-adapter.watchedNamespaces" -}}
{{- $names := list }}
{{- range splitList "," (.Values.watchNamespace | default "") }}
{{- if trim . }}{{ $names = append $names (trim .) }}{{ end }}
{{- end }}
{{- toYaml $names }}
{{- end }}

{{/* The rules on namespaced objects: a ClusterRole's (clusterWide, with the
ClusterTriggerAuthentications it then reads) or each watched namespace's Role's. */}}
{{- define "metrics-adapter.namespacedRules" -}}
{{- $restrict := .root.Values.permissions.operator.restrict.secret -}}
# Watch ScaledObjects; get one a replica takes over; patch their finalizers, which restore
# replicas on deletion.
- apiGroups: [keda.sh]
  resources: [scaledobjects]
  verbs: [get, list, watch, patch]
# Watch ScaledJobs; get one a replica takes over; patch their finalizer.
- apiGroups: [keda.sh]
  resources: [scaledjobs]
  verbs: [get, list, watch, patch]
- apiGroups: [keda.sh]
  resources: [triggerauthentications{{ if .clusterWide }}, clustertriggerauthentications{{ end }}]
  verbs: [list, watch]
# Conditions, lastActiveTime, originalReplicaCount: the state that survives a restart.
- apiGroups: [keda.sh]
  resources: [scaledobjects/status]
  verbs: [patch]
- apiGroups: [keda.sh]
  resources: [scaledjobs/status]
  verbs: [patch]
# The HPA's owner reference (OwnerReferencesPermissionEnforcement).
- apiGroups: [keda.sh]
  resources: [scaledobjects/finalizers]
  verbs: [update]
# A Job's owner reference to its ScaledJob.
- apiGroups: [keda.sh]
  resources: [scaledjobs/finalizers]
  verbs: [update]
# A ScaledJob's Jobs: created, watched, deleted by rollouts and history limits.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [create, list, watch, delete]
# Whether a Job is still pending: its pods, from a watch; kubernetes-workload's pod count.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
# TriggerAuthentication secretTargetRef / configMapTargetRef and ...FromEnv parameters.
- apiGroups: [""]
  resources: [{{ if not $restrict }}secrets, {{ end }}configmaps]
  verbs: [list, watch]
# Sharding: a read forwarded to the object's owner is made as this ServiceAccount, and the
# owner checks (SubjectAccessReview) that it may read the namespace's external metrics.
- apiGroups: [external.metrics.k8s.io]
  resources: ["*"]
  verbs: [get, list]
# The owned HPA keda-hpa-<name>, server-side applied.
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, create, patch, delete]
# 0 <-> 1, pause and restore through the target's /scale, whatever its kind.
- apiGroups: ["*"]
  resources: ["*/scale"]
  verbs: [get, patch]
# The target's pod template env, for ...FromEnv parameters.
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [list, watch]
# podIdentity aws (workload-owned) and aws-eks: the workload ServiceAccount's role annotation.
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- if .root.Values.webhooks.enabled }}
# The admission webhook: HPAs already scaling a target, LimitRange defaults, when applied.
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [list]
- apiGroups: [""]
  resources: [limitranges]
  verbs: [list]
{{- end }}
{{- end }}
