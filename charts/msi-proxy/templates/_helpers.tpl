{{/* Names and labels shared by every template. */}}
{{- define "msi-proxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "msi-proxy.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "msi-proxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "msi-proxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "msi-proxy.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | trunc 63 | trimSuffix "-" }}
{{ include "msi-proxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: node-proxy
{{- end -}}

{{- define "msi-proxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "msi-proxy.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Windows images carry the OS build in the tag: process isolation needs it to match the node. */}}
{{- define "msi-proxy.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if eq .Values.os "windows" -}}
{{- printf "%s:%s-%s" .Values.image.repository $tag .Values.image.windowsVersion -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "msi-proxy.adminSecretName" -}}
{{- default (printf "%s-admin" (include "msi-proxy.fullname" .)) .Values.adminApi.existingSecret -}}
{{- end -}}

{{- define "msi-proxy.bindingsName" -}}
{{- printf "%s-bindings" (include "msi-proxy.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The Linux transparent path: the proxy installs the node DNAT rule itself (MsiProxy:Kubernetes:Dnat). */}}
{{- define "msi-proxy.dnat" -}}
{{- if and (eq .Values.os "linux") .Values.kubernetes.enabled .Values.kubernetes.dnat.enabled -}}
true
{{- end -}}
{{- end -}}

{{/* Host networking: HostProcess on Windows, or the DNAT path on Linux (the rule points at the node IP). */}}
{{- define "msi-proxy.hostNetwork" -}}
{{- if or (and (eq .Values.os "windows") .Values.windows.hostProcess.enabled) (include "msi-proxy.dnat" .) -}}
true
{{- end -}}
{{- end -}}
