{{- define "marshal-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "marshal-agent.fullname" -}}
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

{{- define "marshal-agent.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "marshal-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: marshal
{{- end }}

{{- define "marshal-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "marshal-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end }}

{{- define "marshal-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "marshal-agent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "marshal-agent.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Checks shared by every template: the syncer reads marshal-system/marshal-clearance, so the release lives there. */}}
{{- define "marshal-agent.validate" -}}
{{- if ne .Release.Namespace "marshal-system" }}
{{- fail (printf "install marshal-agent into the namespace marshal-system (Marshal reads marshal-system/marshal-clearance), not %s" .Release.Namespace) }}
{{- end }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" .Values.cluster) }}
{{- fail "cluster must be the member's MemberCluster name (a DNS label), e.g. --set cluster=lva-1" }}
{{- end }}
{{- $c := required "clearance is required: the host nation's own clearance (policy, classifications, reviewBy)" .Values.clearance }}
{{- if and .Values.agent.enabled (not .Values.trustedKeys) }}
{{- fail "trustedKeys is required: the hub's signing public keys (ed25519:<base64> lines from marshal keygen --public-out)" }}
{{- end }}
{{- if not (and $c.policy $c.classifications $c.reviewBy) }}
{{- fail "clearance needs policy, classifications and reviewBy" }}
{{- end }}
{{- if not (regexMatch "^[A-Z]{3}$" (toString .Values.nation)) }}
{{- fail "nation is required: the host nation's ISO 3166-1 alpha-3 code (the member never takes it from the hub)" }}
{{- end }}
{{- $held := false }}
{{- range .Values.policies }}{{ if eq .policyIdentifier $c.policy }}{{ $held = true }}{{ end }}{{ end }}
{{- if not $held }}
{{- fail (printf "policies must hold the security policy %s of the clearance: the member never uses the hub's" $c.policy) }}
{{- end }}
{{- end }}

{{/* A CEL list literal of single-quoted names (the syncer validates that they hold no quote). */}}
{{- define "marshal-agent.celList" -}}
[{{- range $i, $v := . }}{{ if $i }}, {{ end }}'{{ $v }}'{{- end }}]
{{- end }}

{{/* The member guard: files/member-guard.yaml with its placeholders filled in exactly as `marshal agent guard`
fills them (src/agent/guard.rs). */}}
{{- define "marshal-agent.guard" -}}
{{- $wp := .Values.workloadPolicy }}
{{- $level := default "restricted" $wp.podSecurity }}
{{- $syncers := .Values.admissionGuard.syncerUsers }}
{{- if not $syncers }}
{{- $syncers = list (printf "system:serviceaccount:%s:%s" .Release.Namespace (include "marshal-agent.serviceAccountName" .)) }}
{{- end }}
{{- $volumes := $wp.volumes }}
{{- if not (hasKey $wp "volumes") }}
{{- if eq $level "restricted" }}
{{- $volumes = list "configMap" "csi" "downwardAPI" "emptyDir" "ephemeral" "persistentVolumeClaim" "projected" "secret" }}
{{- else }}
{{- $volumes = list "awsElasticBlockStore" "azureDisk" "azureFile" "cephfs" "cinder" "configMap" "csi" "downwardAPI" "emptyDir" "ephemeral" "fc" "flexVolume" "flocker" "gcePersistentDisk" "gitRepo" "glusterfs" "image" "iscsi" "nfs" "persistentVolumeClaim" "photonPersistentDisk" "portworxVolume" "projected" "quobyte" "rbd" "scaleIO" "secret" "storageos" "vsphereVolume" }}
{{- end }}
{{- end }}
{{- $text := .Files.Get "files/member-guard.yaml" }}
{{- $text = $text | replace "{CLUSTER}" .Values.cluster }}
{{- $text = $text | replace "{SYNCERS}" (include "marshal-agent.celList" $syncers) }}
{{- $text = $text | replace "{CLEARED}" (include "marshal-agent.cleared" .) }}
{{- $text = $text | replace "{LEVEL}" (printf "'%s'" $level) }}
{{- $text = $text | replace "{NAMESPACES}" (include "marshal-agent.celList" (default list $wp.namespaces)) }}
{{- $text = $text | replace "{SERVICE_ACCOUNTS}" (include "marshal-agent.celList" (default (list "default") $wp.serviceAccounts)) }}
{{- $text = $text | replace "{AUTOMOUNT}" (ternary "true" "false" (default false $wp.automountServiceAccountToken)) }}
{{- $text = $text | replace "{IMAGES}" (include "marshal-agent.celList" (default list $wp.images)) }}
{{- $text = $text | replace "{VOLUMES}" (include "marshal-agent.celList" $volumes) }}
{{- $text }}
{{- end }}

{{/* The cleared classifications as a CEL list of label values (Marshal's label sanitising: characters outside
[A-Za-z0-9._-] become "_", at most 63 characters, ends trimmed to alphanumerics), cut at admission.maxClassification
under the host's own policy's order; a maximum that cannot be ranked clears nothing (fail closed). */}}
{{- define "marshal-agent.cleared" -}}
{{- $max := "" }}
{{- with .Values.admission }}{{ $max = default "" .maxClassification }}{{ end }}
{{- $order := list }}
{{- range .Values.policies }}{{ if eq .policyIdentifier $.Values.clearance.policy }}{{ $order = .classifications }}{{ end }}{{ end }}
{{- $maxRank := -1 }}
{{- range $i, $c := $order }}{{ if eq $c $max }}{{ $maxRank = $i }}{{ end }}{{ end }}
{{- $out := list }}
{{- range .Values.clearance.classifications }}
{{- $cls := . }}
{{- $rank := -1 }}
{{- range $i, $c := $order }}{{ if eq $c $cls }}{{ $rank = $i }}{{ end }}{{ end }}
{{- if or (eq $max "") (and (ge $rank 0) (ge $maxRank 0) (le $rank $maxRank)) }}
{{- $v := regexReplaceAll "[^A-Za-z0-9._-]" $cls "_" | trunc 63 }}
{{- $out = append $out (regexReplaceAll "^[^A-Za-z0-9]+|[^A-Za-z0-9]+$" $v "") }}
{{- end }}
{{- end }}
{{- include "marshal-agent.celList" $out }}
{{- end }}
