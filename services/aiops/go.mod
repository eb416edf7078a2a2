module github.com/aiops-dev/aiops/services/aiops

go 1.26.0

require (
	github.com/aiops-dev/aiops/pkg v0.0.0
	github.com/aiops-dev/aiops/services/writer v0.0.0
)

replace (
	github.com/aiops-dev/aiops/pkg => ../../pkg
	github.com/aiops-dev/aiops/services/writer => ../writer
)
