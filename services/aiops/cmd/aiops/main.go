// Command aiops runs the whole pipeline in one process and holds the
// offline tools (see `aiops help`).
package main

import (
	"os"

	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/services/aiops"
)

func main() { os.Exit(service.Main("aiops", os.Args[1:], os.Stderr, aiops.Main)) }
