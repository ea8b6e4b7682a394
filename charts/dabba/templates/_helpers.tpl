{{/* Names and labels. */}}

{{- define "dabba.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dabba.fullname" -}}
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

{{- define "dabba.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dabba.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dabba.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "dabba.labels" -}}
helm.sh/chart: {{ include "dabba.chart" . }}
{{ include "dabba.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dabba
{{- end -}}

{{- define "dabba.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "dabba.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "dabba.metricsServiceName" -}}
{{- printf "%s-metrics" (include "dabba.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dabba.peeringName" -}}
{{- default (include "dabba.fullname" .) .Values.leaderElection.peeringName -}}
{{- end -}}

{{- define "dabba.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The `job` label Prometheus gives the operator's series (ServiceMonitor: the Service name). */}}
{{- define "dabba.metricsJob" -}}
{{- default (include "dabba.metricsServiceName" .) .Values.prometheusRule.job -}}
{{- end -}}

{{- define "dabba.validate" -}}
{{- if and (not .Values.leaderElection.enabled) (gt (int .Values.replicas) 1) -}}
{{- fail "leaderElection.enabled=false runs the operator --standalone: set replicas: 1, or two replicas would both act" -}}
{{- end -}}
{{- range .Values.watchNamespaces -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" .) -}}
{{- fail (printf "watchNamespaces: %q is not a namespace name" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
RBAC, rule by rule, each with the code that needs it. Kubernetes RBAC cannot restrict list or
watch by label, so the label-selected Secret watch (dabba.io/meshcertificate) still needs list
and watch on all Secrets of a namespace: with a ClusterRole that is every Secret in the cluster.
`watchNamespaces` is the way to confine it.
*/}}

{{/* Rules for the namespaced resources the operator works on: in a ClusterRole (all
namespaces) or in a Role per watched namespace. */}}
{{- define "dabba.rules.namespaced" -}}
# Canary and MeshCertificate: kopf lists and watches them, and patches its finalizer and its
# dabba.io/* bookkeeping annotations; the controllers read them (get) and write status last.
- apiGroups: [dabba.io]
  resources: [canaries, meshcertificates]
  verbs: [get, list, watch, patch]
- apiGroups: [dabba.io]
  resources: [canaries/status, meshcertificates/status]
  verbs: [patch]
# An Event for every decision (kopf posts core/v1 Events).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Canary: watch target Deployments for new revisions (list, watch), read them (get), create
# <target>-primary (create), promote by copying the template (update); MeshCertificate
# restartOnRotation stamps the pod template (patch).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, update, patch]
# Canary: scale the target and the primary.
- apiGroups: [apps]
  resources: [deployments/scale]
  verbs: [patch]
# MeshCertificate restartOnRotation of StatefulSets and DaemonSets.
- apiGroups: [apps]
  resources: [statefulsets, daemonsets]
  verbs: [patch]
# Canary: the apex, -primary and -canary Services (read, create, repair or switch the selector);
# list and watch with the label selector dabba.io/canary keep the copies an evaluation reads
# (not restrictable by label in RBAC, like Secrets; Services hold no secrets).
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch]
# Canary: a ConfigMap the target's pod template references is part of the revision hash.
# MeshCertificate: a CA's trust bundle ConfigMaps, read and written by name only (no list or
# watch: dabba never needs to see other ConfigMaps), deleted with their CA.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create, update, delete]
# MeshCertificate: read, create and replace its Secret (delete only to change a wrong Secret
# type, which is immutable); read issuer Secrets; watch with the label selector
# dabba.io/meshcertificate (list, watch: not restrictable by label). Canary: a Secret the
# target's pod template references is hashed into the revision (its data never leaves the
# operator).
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, update, delete]
# Canary: mirror the target's HorizontalPodAutoscaler for the primary.
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [list, create]
# Canary router istio: the VirtualService and DestinationRules (delete: revert on deletion;
# list and watch, label-selected dabba.io/canary: the copies an evaluation reads).
- apiGroups: [networking.istio.io]
  resources: [virtualservices, destinationrules]
  verbs: [get, list, watch, create, update, delete]
# Canary router gatewayapi: the HTTPRoute (delete: revert on deletion; list and watch,
# label-selected: the copies an evaluation reads).
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, watch, create, update, delete]
{{- end -}}

{{/* Leader election inside one watched namespace (KopfPeering). */}}
{{- define "dabba.rules.namespacedPeering" -}}
# Leader election: `dabba run` creates the KopfPeering; kopf lists and watches it to see its
# peers and patches it (keep-alives); the certificate runner reads it (dabba.leadership) —
# get and patch only on this release's peering object.
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [create, list, watch]
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  resourceNames: [{{ include "dabba.peeringName" . | quote }}]
  verbs: [get, patch]
{{- end -}}

{{/* Cluster-scoped rules, needed in both modes. */}}
{{- define "dabba.rules.cluster" -}}
# kopf discovers the resources it serves and notices CRDs being added or changed.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
# MeshCertificate trust bundles follow namespaces as they appear (names and labels only).
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- if .Values.watchNamespaces }}
# kopf follows the watched namespaces (created or deleted later); names only, nothing inside.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- else if .Values.leaderElection.enabled }}
# Leader election: `dabba run` creates the ClusterKopfPeering; kopf lists and watches it to see
# its peers and patches it (keep-alives); the certificate runner reads it (dabba.leadership) —
# get and patch only on this release's peering object.
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings]
  verbs: [create, list, watch]
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings]
  resourceNames: [{{ include "dabba.peeringName" . | quote }}]
  verbs: [get, patch]
{{- end }}
{{- end -}}

{{/* Cross-namespace issuers with watchNamespaces: read-only. */}}
{{- define "dabba.rules.issuer" -}}
# MeshCertificate issuerRef in another namespace: the CA MeshCertificate and its Secret, or an
# issuer Secret — read only.
- apiGroups: [dabba.io]
  resources: [meshcertificates]
  verbs: [get]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end -}}
