module github.com/aiops-dev/aiops/services/notifier

go 1.26.0

replace github.com/aiops-dev/aiops/pkg => ../../pkg
