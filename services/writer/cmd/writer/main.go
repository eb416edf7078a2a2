// Command writer stores every event from JetStream in ClickHouse.
package main

import (
	"os"

	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/services/writer"
)

func main() { os.Exit(service.Main("writer", os.Args[1:], os.Stderr, writer.Main)) }
