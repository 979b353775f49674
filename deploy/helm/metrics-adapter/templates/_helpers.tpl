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
