// Command correlator groups alerts, anomalies and changes into incidents.
package main

import (
	"os"

	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/services/correlator"
)

func main() { os.Exit(service.Main("correlator", os.Args[1:], os.Stderr, correlator.Main)) }
