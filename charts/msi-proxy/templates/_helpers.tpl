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

{{/*
The recommended labels (kubernetes.io/docs/concepts/overview/working-with-objects/common-labels) of every object and of
the pod template. The selector keeps name + instance only: a DaemonSet's selector cannot change after install.
*/}}
{{- define "msi-proxy.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "msi-proxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: msi-proxy
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "msi-proxy.labels" -}}
{{ include "msi-proxy.commonLabels" . }}
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

{{/* The Linux transparent path: the proxy installs the node's pod rules itself (MsiProxy:Kubernetes:Dnat). */}}
{{- define "msi-proxy.dnat" -}}
{{- if and (eq .Values.os "linux") .Values.kubernetes.enabled .Values.kubernetes.dnat.enabled (not .Values.kubernetes.dnat.uninstall) -}}
true
{{- end -}}
{{- end -}}

{{/* kubernetes.dnat.uninstall: no proxy runs; every node's pod rules are removed (MsiProxy uninstall-pod-rules). */}}
{{- define "msi-proxy.dnatUninstall" -}}
{{- if and (eq .Values.os "linux") .Values.kubernetes.dnat.uninstall -}}
true
{{- end -}}
{{- end -}}

{{/* Host networking: HostProcess on Windows, or the pod rules on Linux (they live in the node's network namespace). */}}
{{- define "msi-proxy.hostNetwork" -}}
{{- if or (and (eq .Values.os "windows") .Values.windows.hostProcess.enabled) (include "msi-proxy.dnat" .) (include "msi-proxy.dnatUninstall" .) -}}
true
{{- end -}}
{{- end -}}

{{/*
The state file (MsiProxy:StateFile): in the container's state volume, or — a HostProcess container is the node — in the
node's folder itself. The image sets the same variable; the pod's value is the one that counts.
*/}}
{{- define "msi-proxy.stateFile" -}}
{{- if and (eq .Values.os "windows") .Values.windows.hostProcess.enabled -}}
{{- printf "%s\\state.json" (include "msi-proxy.stateHostPath" .) -}}
{{- else if eq .Values.os "windows" -}}
{{- printf "%s\\state.json" (include "msi-proxy.stateMount" .) -}}
{{- else -}}
{{- printf "%s/state.json" (include "msi-proxy.stateMount" .) -}}
{{- end -}}
{{- end -}}

{{/* Where the state volume is mounted in the container. */}}
{{- define "msi-proxy.stateMount" -}}
{{- if eq .Values.os "windows" -}}C:\ProgramData\MsiProxy{{- else -}}/var/lib/msi-proxy{{- end -}}
{{- end -}}

{{/* The node folder of state.volume hostPath (and of a HostProcess container): one per release, so two never share a file. */}}
{{- define "msi-proxy.stateHostPath" -}}
{{- if .Values.state.hostPath -}}
{{- .Values.state.hostPath -}}
{{- else if eq .Values.os "windows" -}}
{{- printf "C:\\ProgramData\\MsiProxy\\%s" (include "msi-proxy.fullname" .) -}}
{{- else -}}
{{- printf "/var/lib/msi-proxy/%s" (include "msi-proxy.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
The proxy's appsettings.json, in three layers (later wins): what the typed values feed, then .Values.config (any key),
then the keys that must match what the templates render (mounts, host network), which config may not set. The last
layer is set key by key, not merged: a merge never overwrites with false.
*/}}
{{- define "msi-proxy.appsettings" -}}
{{- include "msi-proxy.checkConfig" . -}}
{{- $k8s := .Values.kubernetes -}}
{{- $dnat := dict "Command" $k8s.dnat.command "ReconcileInterval" $k8s.dnat.reconcileInterval -}}
{{- with $k8s.dnat.interface }}{{ $_ := set $dnat "Interface" . }}{{ end -}}
{{- with $k8s.dnat.sourceCidr }}{{ $_ := set $dnat "SourceCidr" . }}{{ end -}}
{{- $typed := dict
  "MsiProxy" (dict "Upstreams" .Values.upstreams "Clients" .Values.clients "Kubernetes" (dict "Dnat" $dnat))
  "Serilog" (dict "MinimumLevel" (dict "Default" .Values.logLevel)) -}}
{{- $settings := mustMergeOverwrite (dict) (deepCopy $typed) (deepCopy .Values.config) -}}
{{- $kube := $settings.MsiProxy.Kubernetes -}}
{{- $_ := set $kube "Enabled" $k8s.enabled -}}
{{- if $k8s.enabled }}{{ $_ := set $kube "BindingsPath" "/etc/msi-proxy/bindings/bindings.yaml" }}{{ end -}}
{{- $_ := set $kube.Dnat "Enabled" (eq (include "msi-proxy.dnat" .) "true") -}}
{{- if include "msi-proxy.dnat" . }}{{ $_ := set $kube.Dnat "ProxyPort" .Values.ports.client }}{{ end -}}
{{- if .Values.adminApi.enabled -}}
{{- $management := default (dict) $settings.MsiProxy.Management -}}
{{- $_ := set $management "ApiKeyFile" "/etc/msi-proxy/admin/api-key" -}}
{{- $_ := set $settings.MsiProxy "Management" $management -}}
{{- end -}}
{{- toPrettyJson $settings -}}
{{- end -}}

{{/* Every key path of a configuration tree, ":"-separated, one a line. */}}
{{- define "msi-proxy.configPaths" -}}
{{- range $key, $value := .tree }}
{{ $.prefix }}{{ $key }}
{{- if kindIs "map" $value }}
{{- include "msi-proxy.configPaths" (dict "prefix" (printf "%s%s:" $.prefix $key) "tree" $value) }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
What config may not say. Keys the chart derives from other values: the proxy would run unlike what was rendered.
Sections the chart writes too, spelt in another case: .NET configuration keys ignore case, so the JSON would hold the
same key twice, which the proxy refuses at start-up.
*/}}
{{- define "msi-proxy.checkConfig" -}}
{{- $derived := dict
  "urls" "ports.client"
  "msiproxy:management:urls" "ports.management"
  "msiproxy:management:apikey" "adminApi"
  "msiproxy:management:apikeyfile" "adminApi"
  "msiproxy:kubernetes:enabled" "kubernetes.enabled"
  "msiproxy:kubernetes:nodename" "nothing: each proxy watches its own node (downward API)"
  "msiproxy:kubernetes:bindingspath" "kubernetes.bindings"
  "msiproxy:kubernetes:dnat:enabled" "kubernetes.dnat.enabled"
  "msiproxy:kubernetes:dnat:proxyaddress" "nothing: the rule targets the node IP (downward API)"
  "msiproxy:kubernetes:dnat:proxyport" "ports.client"
  "msiproxy:statefile" "state" -}}
{{- $spelling := dict -}}
{{- range list "MsiProxy" "MsiProxy:Upstreams" "MsiProxy:Clients" "MsiProxy:Management" "MsiProxy:Kubernetes"
  "MsiProxy:Kubernetes:Dnat" "MsiProxy:Kubernetes:Dnat:Command" "MsiProxy:Kubernetes:Dnat:ReconcileInterval"
  "MsiProxy:Kubernetes:Dnat:Interface" "MsiProxy:Kubernetes:Dnat:SourceCidr" "Serilog" "Serilog:MinimumLevel"
  "Serilog:MinimumLevel:Default" }}
{{- $_ := set $spelling (lower .) . }}
{{- end }}
{{- range splitList "\n" (include "msi-proxy.configPaths" (dict "prefix" "" "tree" .Values.config)) }}
{{- if hasKey $derived (lower .) }}
{{- fail (printf "config sets %s, which the chart derives: set %s instead" . (get $derived (lower .))) }}
{{- end }}
{{- if and (hasKey $spelling (lower .)) (ne . (get $spelling (lower .))) }}
{{- fail (printf "config spells %s, which the chart also writes, as %s: spell it %s" (get $spelling (lower .)) . (get $spelling (lower .))) }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The helm test pods: unprivileged, nothing mounted, nothing written. */}}
{{- define "msi-proxy.testPodSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65534
  runAsGroup: 65534
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "msi-proxy.testContainerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
resources:
  requests:
    cpu: 10m
    memory: 16Mi
  limits:
    memory: 32Mi
{{- end -}}

{{/*
The Secrets the proxy may get, as JSON {namespace: [names…]}, sorted and without repeats: those kubernetes.bindings
name for their identity header (always in the binding's namespace), and kubernetes.identityHeaderSecrets for bindings
edited outside helm, which RBAC rendered here cannot follow.
*/}}
{{- define "msi-proxy.identityHeaderSecrets" -}}
{{- $refs := list -}}
{{- range .Values.kubernetes.bindings -}}
{{- if .identityHeaderSecret -}}
{{- $refs = append $refs (dict "namespace" .namespace "name" .identityHeaderSecret.name) -}}
{{- end -}}
{{- end -}}
{{- $refs = concat $refs .Values.kubernetes.identityHeaderSecrets -}}
{{- $byNamespace := dict -}}
{{- range $refs -}}
{{- $names := get $byNamespace .namespace | default list -}}
{{- $_ := set $byNamespace .namespace (append $names .name | uniq | sortAlpha) -}}
{{- end -}}
{{- toJson $byNamespace -}}
{{- end -}}
