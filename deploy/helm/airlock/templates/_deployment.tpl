{{/*
One service's Deployment. Called with a dict:
  root       the chart's context ($)
  component  gateway | orchestrator | result-processor
  values     the component's values
  binary     the executable (airlock-gateway, …)
  imageKey   key in images.digests
  replicas   replicas (absent when an HPA owns them)
  extraEnv   more env entries (YAML text), optional
  token      true when the pod needs its ServiceAccount token (the orchestrator)
  maxSurge   maxSurge of the rolling update, optional (default 25%)
  replicaId  true to pass the pod's name as AIRLOCK_REPLICA_ID (orchestrator,
             result-processor: the name their replica lease is held under)
*/}}
{{- define "airlock.deployment" -}}
{{- $root := .root -}}
{{- $fullname := include "airlock.fullname" $root -}}
{{- $name := printf "%s-%s" $fullname .component -}}
{{- $digest := get $root.Values.images.digests .imageKey -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "airlock.labels" (dict "root" $root "component" .component) | nindent 4 }}
  annotations:
    checkov.io/skip1: CKV_K8S_35=The services read settings only from AIRLOCK_* variables (clap env); secret values are taken from Secrets by secretKeyRef and held in a type that never prints
    {{- if .token }}
    checkov.io/skip2: CKV_K8S_38=The orchestrator manages run pods through the API server with this ServiceAccount's token; its Role is limited to the runs namespace
    {{- end }}
    {{- if not $digest }}
    checkov.io/skip3: CKV_K8S_43=Images are referenced by the release tag (the chart's appVersion); set images.digests to pin by digest
    {{- end }}
spec:
  {{- if hasKey . "replicas" }}
  replicas: {{ .replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: {{ .maxSurge | default "25%" }}
      maxUnavailable: 0
  selector:
    matchLabels:
      {{- include "airlock.selectorLabels" (dict "root" $root "component" .component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "airlock.labels" (dict "root" $root "component" .component) | nindent 8 }}
      annotations:
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        {{- with .values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ $name }}
      automountServiceAccountToken: {{ if .token }}true{{ else }}false{{ end }}
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ include "airlock.terminationGrace" $root }}
      securityContext:
        {{- include "airlock.podSecurityContext" $root | nindent 8 }}
      {{- with (include "airlock.imagePullSecrets" $root) }}
      {{- . | trim | nindent 6 }}
      {{- end }}
      {{- include "airlock.scheduling" (dict "root" $root "component" .component "values" .values) | trim | nindent 6 }}
      containers:
        - name: {{ .component }}
          image: {{ include "airlock.image" (dict "root" $root "name" (printf "airlock-%s" .component) "key" .imageKey) }}
          imagePullPolicy: {{ $root.Values.images.pullPolicy }}
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ $fullname }}-common
            - configMapRef:
                name: {{ $fullname }}-{{ .component }}
          env:
            {{- include "airlock.connectionEnv" $root | nindent 12 }}
            {{- if .replicaId }}
            - name: AIRLOCK_REPLICA_ID
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            {{- end }}
            {{- with .extraEnv }}
            {{- . | nindent 12 }}
            {{- end }}
          {{- include "airlock.probes" $root | nindent 10 }}
          resources:
            {{- toYaml .values.resources | nindent 12 }}
          securityContext:
            {{- include "airlock.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            medium: Memory
            sizeLimit: 16Mi
{{- end -}}
