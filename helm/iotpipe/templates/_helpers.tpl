{{/*
Names, labels and the pieces every workload shares.
*/}}

{{- define "iotpipe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "iotpipe.fullname" -}}
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

{{/* Object name of a component: (list $ "cleaner") */}}
{{- define "iotpipe.componentName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "iotpipe.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "iotpipe.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of a component: (list $ "cleaner") or (list $ "kafka" "kafka") for a companion. */}}
{{- define "iotpipe.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ if gt (len .) 2 }}{{ index . 2 }}{{ else }}{{ include "iotpipe.name" $root }}{{ end }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "iotpipe.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ include "iotpipe.chart" $root }}
{{ include "iotpipe.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: iotpipe
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels shared by every iotpipe program pod (not the companions). */}}
{{- define "iotpipe.programSelector" -}}
app.kubernetes.io/name: {{ include "iotpipe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "iotpipe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "iotpipe.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "iotpipe.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The environment variables the chart itself sets, in one place. A program reads IOTPIPE_<FLAG>
for its flag --<flag>; a secret option also reads IOTPIPE_<FLAG>_FILE.
*/}}
{{- define "iotpipe.envNames" -}}
brokers: IOTPIPE_BROKERS
kafkaProps: IOTPIPE_KAFKA_PROPS
kafkaConfig: IOTPIPE_KAFKA_CONFIG
logLevel: IOTPIPE_LOG_LEVEL
metricsPort: IOTPIPE_METRICS_PORT
mqttUrl: IOTPIPE_MQTT
mqttUsername: IOTPIPE_MQTT_USERNAME
mqttPasswordFile: IOTPIPE_MQTT_PASSWORD_FILE
kafkaCluster: IOTPIPE_CLUSTER
deadLetter: IOTPIPE_DEAD_LETTER
databaseUrl: IOTPIPE_DB
databasePassword: PGPASSWORD
{{- end }}

{{/* Where secrets and files are mounted inside the containers. */}}
{{- define "iotpipe.paths" -}}
kafkaConfigDir: /etc/iotpipe/kafka
mqttPasswordDir: /etc/iotpipe/mqtt
filesDir: /etc/iotpipe/files
{{- end }}

{{/* Kafka bootstrap list: the development Kafka when enabled, else kafka.brokers. */}}
{{- define "iotpipe.brokers" -}}
{{- if .Values.dev.kafka.enabled }}
{{- printf "%s:9092" (include "iotpipe.componentName" (list . "kafka")) }}
{{- else if .Values.kafka.brokers }}
{{- tpl .Values.kafka.brokers . }}
{{- else }}
{{- fail "kafka.brokers is required (or enable dev.kafka for a development cluster)" }}
{{- end }}
{{- end }}

{{- define "iotpipe.mqttUrl" -}}
{{- if .Values.dev.mosquitto.enabled }}
{{- printf "mqtt://%s:1883" (include "iotpipe.componentName" (list . "mosquitto")) }}
{{- else if .Values.mqtt.url }}
{{- tpl .Values.mqtt.url . }}
{{- else }}
{{- fail "mqtt.url is required (or enable dev.mosquitto for a development broker)" }}
{{- end }}
{{- end }}

{{/* Secret holding the database URL: {name, key}, or {} when only PG* variables are used. */}}
{{- define "iotpipe.databaseSecret" -}}
{{- if .Values.dev.postgres.enabled }}
name: {{ include "iotpipe.componentName" (list . "postgres") }}
key: url
{{- else if .Values.database.urlSecret.name }}
{{- toYaml .Values.database.urlSecret }}
{{- else if not (or .Values.database.passwordSecret.name .Values.database.env) }}
{{- fail "database.urlSecret (or database.passwordSecret with database.env) is required, or enable dev.postgres" }}
{{- end }}
{{- end }}

{{/* A value as an environment variable string: lists joined by commas, whole numbers without an
exponent, strings through tpl. Arguments: (list $ value). */}}
{{- define "iotpipe.envValue" -}}
{{- $root := index . 0 }}
{{- $v := index . 1 }}
{{- if kindIs "slice" $v }}
{{- $items := list }}
{{- range $v }}{{ $items = append $items (include "iotpipe.envValue" (list $root .)) }}{{ end }}
{{- join "," $items }}
{{- else if kindIs "float64" $v }}
{{- if eq $v (floor $v) }}{{ printf "%d" (int64 $v) }}{{ else }}{{ $v }}{{ end }}
{{- else if kindIs "string" $v }}
{{- tpl $v $root }}
{{- else }}
{{- toString $v }}
{{- end }}
{{- end }}

{{/* IOTPIPE_* variables from a config map: (list $ config). Empty values are left out. */}}
{{- define "iotpipe.configEnv" -}}
{{- $root := index . 0 }}
{{- range $flag, $v := index . 1 }}
{{- if not (or (kindIs "invalid" $v) (and (kindIs "string" $v) (eq $v ""))) }}
- name: {{ printf "IOTPIPE_%s" ($flag | upper | replace "-" "_") }}
  value: {{ include "iotpipe.envValue" (list $root $v) | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A section of a service's settings, or the same section of `defaults`:
(list $ $svc "resources") renders {value: ...}; use with fromYaml.
*/}}
{{- define "iotpipe.setting" -}}
{{- $root := index . 0 }}
{{- $svc := index . 1 }}
{{- $key := index . 2 }}
{{- if hasKey $svc $key }}
value: {{ toJson (index $svc $key) }}
{{- else }}
value: {{ toJson (index $root.Values.defaults $key) }}
{{- end }}
{{- end }}

{{/*
The environment of a program: connection settings for what it `uses`, then its config.
Arguments: (list $ uses config metricsPort); metricsPort nil: no metrics server.
*/}}
{{- define "iotpipe.programEnv" -}}
{{- $root := index . 0 }}
{{- $uses := index . 1 }}
{{- $config := index . 2 }}
{{- $port := index . 3 }}
{{- $env := include "iotpipe.envNames" . | fromYaml }}
{{- $paths := include "iotpipe.paths" . | fromYaml -}}
- name: {{ $env.logLevel }}
  value: {{ $root.Values.logLevel | quote }}
{{- if not (kindIs "invalid" $port) }}
- name: {{ $env.metricsPort }}
  value: {{ $port | quote }}
{{- end }}
{{- if has "kafka" $uses }}
- name: {{ $env.brokers }}
  value: {{ include "iotpipe.brokers" $root | quote }}
{{- with $root.Values.kafka.cluster }}
- name: {{ $env.kafkaCluster }}
  value: {{ . | quote }}
{{- end }}
{{- with $root.Values.topics.names.deadLetter }}
- name: {{ $env.deadLetter }}
  value: {{ . | quote }}
{{- end }}
{{- with $root.Values.kafka.properties }}
{{- $props := list }}
{{- range $k, $v := . }}{{ $props = append $props (printf "%s=%s" $k (include "iotpipe.envValue" (list $root $v))) }}{{ end }}
- name: {{ $env.kafkaProps }}
  value: {{ join ";" $props | quote }}
{{- end }}
{{- if $root.Values.kafka.configSecret.name }}
- name: {{ $env.kafkaConfig }}
  value: {{ printf "%s/%s" $paths.kafkaConfigDir $root.Values.kafka.configSecret.key | quote }}
{{- end }}
{{- end }}
{{- if has "mqtt" $uses }}
- name: {{ $env.mqttUrl }}
  value: {{ include "iotpipe.mqttUrl" $root | quote }}
{{- with $root.Values.mqtt.username }}
- name: {{ $env.mqttUsername }}
  value: {{ . | quote }}
{{- end }}
{{- if $root.Values.mqtt.passwordSecret.name }}
- name: {{ $env.mqttPasswordFile }}
  value: {{ printf "%s/%s" $paths.mqttPasswordDir $root.Values.mqtt.passwordSecret.key | quote }}
{{- end }}
{{- end }}
{{- if has "database" $uses }}
{{- $db := include "iotpipe.databaseSecret" $root | fromYaml }}
{{- if $db.name }}
- name: {{ $env.databaseUrl }}
  valueFrom:
    secretKeyRef:
      name: {{ $db.name }}
      key: {{ $db.key }}
{{- end }}
{{- with $root.Values.database.passwordSecret }}
{{- if .name }}
- name: {{ $env.databasePassword }}
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key }}
{{- end }}
{{- end }}
{{- range $k, $v := $root.Values.database.env }}
- name: {{ $k }}
  value: {{ include "iotpipe.envValue" (list $root $v) | quote }}
{{- end }}
{{- end }}
{{- include "iotpipe.configEnv" (list $root $config) }}
{{- end }}

{{/* Volumes for a program: (list $ uses filesConfigMapName-or-empty) */}}
{{- define "iotpipe.programVolumes" -}}
{{- $root := index . 0 }}
{{- $uses := index . 1 }}
{{- $files := index . 2 -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if and (has "kafka" $uses) $root.Values.kafka.configSecret.name }}
- name: kafka-config
  secret:
    secretName: {{ $root.Values.kafka.configSecret.name }}
    defaultMode: 0440
    items:
      - key: {{ $root.Values.kafka.configSecret.key }}
        path: {{ $root.Values.kafka.configSecret.key }}
{{- end }}
{{- if and (has "mqtt" $uses) $root.Values.mqtt.passwordSecret.name }}
- name: mqtt-password
  secret:
    secretName: {{ $root.Values.mqtt.passwordSecret.name }}
    defaultMode: 0440
    items:
      - key: {{ $root.Values.mqtt.passwordSecret.key }}
        path: {{ $root.Values.mqtt.passwordSecret.key }}
{{- end }}
{{- if $files }}
- name: files
  configMap:
    name: {{ $files }}
{{- end }}
{{- end }}

{{- define "iotpipe.programMounts" -}}
{{- $root := index . 0 }}
{{- $uses := index . 1 }}
{{- $files := index . 2 }}
{{- $paths := include "iotpipe.paths" . | fromYaml -}}
- name: tmp
  mountPath: /tmp
{{- if and (has "kafka" $uses) $root.Values.kafka.configSecret.name }}
- name: kafka-config
  mountPath: {{ $paths.kafkaConfigDir }}
  readOnly: true
{{- end }}
{{- if and (has "mqtt" $uses) $root.Values.mqtt.passwordSecret.name }}
- name: mqtt-password
  mountPath: {{ $paths.mqttPasswordDir }}
  readOnly: true
{{- end }}
{{- if $files }}
- name: files
  mountPath: {{ $paths.filesDir }}
  readOnly: true
{{- end }}
{{- end }}

{{/* Name of the ConfigMap mounted at /etc/iotpipe/files for a service, or "": (list $ name svc) */}}
{{- define "iotpipe.filesConfigMap" -}}
{{- $root := index . 0 }}
{{- $svc := index . 2 }}
{{- if $svc.filesConfigMap }}
{{- $svc.filesConfigMap }}
{{- else if $svc.files }}
{{- include "iotpipe.componentName" (list $root (printf "%s-files" (index . 1))) }}
{{- end }}
{{- end }}

{{/* Pod-level settings of the programs. */}}
{{- define "iotpipe.podCommon" -}}
serviceAccountName: {{ include "iotpipe.serviceAccountName" . }}
{{ include "iotpipe.jobPodCommon" . }}
{{- end }}

{{/* Pod-level settings of the hook Jobs: they may run before the release's ServiceAccount
exists, and need no API access, so they use the namespace's default account without a token. */}}
{{- define "iotpipe.jobPodCommon" -}}
automountServiceAccountToken: {{ .Values.automountServiceAccountToken }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
