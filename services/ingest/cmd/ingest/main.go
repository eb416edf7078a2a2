// Command ingest is the HTTP gateway producers post events to.
package main

import (
	"os"

	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/services/ingest"
)

func main() { os.Exit(service.Main("ingest", os.Args[1:], os.Stderr, ingest.Main)) }
