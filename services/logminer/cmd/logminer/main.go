// Command logminer mines log templates from JetStream: templated logs,
// template events, per-template counts and error bursts.
package main

import (
	"os"

	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/services/logminer"
)

func main() { os.Exit(service.Main("logminer", os.Args[1:], os.Stderr, logminer.Main)) }
