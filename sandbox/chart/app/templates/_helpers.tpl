{{- define "app.tag" -}}
{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "app.commit" -}}
{{ get .Values.commits (include "app.tag" .) | default "unknown" }}
{{- end -}}
