// Command detector scores metric samples from JetStream and publishes
// anomaly events.
package main

import (
	"os"

	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/services/detector"
)

func main() { os.Exit(service.Main("detector", os.Args[1:], os.Stderr, detector.Main)) }
