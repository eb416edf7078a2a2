module github.com/aiops-dev/aiops/services/logminer

go 1.26.0

require github.com/aiops-dev/aiops/pkg v0.0.0

replace github.com/aiops-dev/aiops/pkg => ../../pkg
