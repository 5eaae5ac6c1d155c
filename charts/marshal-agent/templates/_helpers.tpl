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
{{- end }}

{{/* The cleared classifications as label values, comma-separated (Marshal's label sanitising: characters
outside [A-Za-z0-9._-] become "_", at most 63 characters, ends trimmed to alphanumerics). */}}
{{- define "marshal-agent.clearedLabels" -}}
{{- $out := list }}
{{- range .Values.clearance.classifications }}
{{- $v := regexReplaceAll "[^A-Za-z0-9._-]" . "_" | trunc 63 }}
{{- $out = append $out (regexReplaceAll "^[^A-Za-z0-9]+|[^A-Za-z0-9]+$" $v "") }}
{{- end }}
{{- join "," $out }}
{{- end }}
