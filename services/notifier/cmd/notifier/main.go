// Command notifier delivers incidents to webhooks.
package main

import (
	"os"

	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/services/notifier"
)

func main() { os.Exit(service.Main("notifier", os.Args[1:], os.Stderr, notifier.Main)) }
