{{/* Names, labels and the pieces every pod shares. */}}

{{- define "airlock.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "airlock.fullname" -}}
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

{{/* Labels of every object; call with (dict "root" $ "component" "gateway"). */}}
{{- define "airlock.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "airlock.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: airlock
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{- define "airlock.selectorLabels" -}}
app.kubernetes.io/name: {{ include "airlock.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The runs namespace, checked: never the release's own. */}}
{{- define "airlock.runsNamespace" -}}
{{- $ns := required "runs.namespace.name is required" .Values.runs.namespace.name -}}
{{- if eq $ns .Release.Namespace -}}
{{- fail "runs.namespace.name must differ from the release namespace: run pods get their own namespace, quota and deny-all policy" -}}
{{- end -}}
{{- $ns -}}
{{- end -}}

{{/* An Airlock image: (dict "root" $ "name" "airlock-gateway" "key" "gateway"). */}}
{{- define "airlock.image" -}}
{{- $images := .root.Values.images -}}
{{- $repo := printf "%s/%s" (trimSuffix "/" $images.repositoryPrefix) .name -}}
{{- $digest := get $images.digests .key -}}
{{- if $digest -}}
{{- printf "%s@%s" $repo $digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .root.Chart.AppVersion $images.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the connection URLs: the operator's, or the dev-mode one. */}}
{{- define "airlock.databaseSecret" -}}
{{- if .Values.devMode.enabled -}}
{{- printf "%s-dev-connections" (include "airlock.fullname" .) -}}
{{- else -}}
{{- required "database.existingSecret is required (a Secret holding the PostgreSQL URL), unless devMode.enabled" .Values.database.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "airlock.databaseKey" -}}
{{- if .Values.devMode.enabled -}}database-url{{- else -}}{{ .Values.database.urlKey }}{{- end -}}
{{- end -}}

{{- define "airlock.amqpSecret" -}}
{{- if .Values.devMode.enabled -}}
{{- printf "%s-dev-connections" (include "airlock.fullname" .) -}}
{{- else -}}
{{- required "amqp.existingSecret is required (a Secret holding the RabbitMQ URL), unless devMode.enabled" .Values.amqp.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "airlock.amqpKey" -}}
{{- if .Values.devMode.enabled -}}amqp-url{{- else -}}{{ .Values.amqp.urlKey }}{{- end -}}
{{- end -}}

{{/* The connection URLs, from Secrets only. */}}
{{- define "airlock.connectionEnv" -}}
- name: AIRLOCK_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "airlock.databaseSecret" . }}
      key: {{ include "airlock.databaseKey" . }}
- name: AIRLOCK_AMQP_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "airlock.amqpSecret" . }}
      key: {{ include "airlock.amqpKey" . }}
{{- end -}}

{{/* The drain must end before the kubelet's SIGKILL. */}}
{{- define "airlock.terminationGrace" -}}
{{- $grace := int .Values.shutdownGraceSeconds -}}
{{- $termination := int .Values.terminationGracePeriodSeconds -}}
{{- if le $termination (add $grace 15) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed shutdownGraceSeconds + 15 (%d): the services drain for up to that long" $termination (add $grace 15)) -}}
{{- end -}}
{{- $termination -}}
{{- end -}}

{{/* Pod security: restricted. */}}
{{- define "airlock.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "airlock.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Probes on the service's HTTP port. */}}
{{- define "airlock.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{/* Scheduling of a component: (dict "root" $ "component" "gateway" "values" .Values.gateway). */}}
{{- define "airlock.scheduling" -}}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
affinity:
{{- if .values.affinity }}
  {{- toYaml .values.affinity | nindent 2 }}
{{- else }}
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "airlock.selectorLabels" . | nindent 14 }}
{{- end }}
{{- if .root.Values.topologySpread.enabled }}
topologySpreadConstraints:
  - maxSkew: {{ .root.Values.topologySpread.maxSkew }}
    topologyKey: {{ .root.Values.topologySpread.topologyKey }}
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "airlock.selectorLabels" . | nindent 8 }}
{{- end }}
{{- end -}}

{{- define "airlock.imagePullSecrets" -}}
{{- with .Values.images.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The public URL: configured, or https:// + the first ingress host. */}}
{{- define "airlock.publicUrl" -}}
{{- if .Values.publicUrl -}}
{{- .Values.publicUrl -}}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts -}}
{{- printf "https://%s" (first .Values.ingress.hosts) -}}
{{- end -}}
{{- end -}}
