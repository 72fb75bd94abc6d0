{{- define "shop.tag" -}}{{ .Values.tag | default .Chart.AppVersion }}{{- end -}}
{{- define "shop.labels" -}}
app.kubernetes.io/name: shop
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
