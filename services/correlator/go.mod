module github.com/aiops-dev/aiops/services/correlator

go 1.26.0

replace github.com/aiops-dev/aiops/pkg => ../../pkg
