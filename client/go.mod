module github.com/codeexec/codeexec/client

go 1.26.0

require github.com/getkin/kin-openapi v0.153.0 // indirect
