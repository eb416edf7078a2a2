// Package aiops is the single aiops binary: `aiops run` runs every service
// in one process on an embedded NATS server, and the offline tools work on
// files with the same code the services use.
package aiops

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aiops-dev/aiops/pkg/service"
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{"run", "run the whole pipeline in this process (embedded NATS unless nats.embedded=false)", runPipeline},
		{"demo", "a guided end-to-end run: a deploy, anomalies, an alert storm and recovery become incidents delivered to a local receiver (ClickHouse as for run)", demoCommand},
		{"logs", "offline log template mining: logs parse --input FILE.log [--format '<Date> <Time> <Level> <Component>: <Content>'] --output parsed.csv", logsCommand},
		{"correlate", "offline incident correlation: correlate replay --input events.jsonl [--catalog catalog.yaml] --output result.json; correlate eval STORM... scores it against ground truth; correlate generate writes storms with their truth", correlateCommand},
		{"incidents", "the incidents API from a shell: incidents list [-status active] | incidents show ID | incidents ack|resolve ID -by NAME | incidents assign ID -by NAME -to NAME | incidents comment ID -by NAME -text TEXT", incidentsCommand},
		{"notify", "the notifier's routing and delivery: notify routes test --config alertmanager.yml label=value ... | notify send-test --config FILE --receiver NAME | notify template render --template FILE | notify replay [--dry-run] delivers the dead letters again", notifyCommand},
		{"detect", "offline anomaly detection: detect replay --input series.csv --output scores.csv [--plot FILE.png]", detectCommand},
		{"version", "print the version", func(context.Context, []string) error { return printVersion(os.Stdout) }},
	}
}

// Main dispatches to the subcommand named in args[0].
func Main(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(os.Stderr)
		if len(args) == 0 {
			return service.Usage(fmt.Errorf("no command given"))
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:])
		}
	}
	usage(os.Stderr)
	return service.Usage(fmt.Errorf("unknown command %q", args[0]))
}

func usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("usage: aiops COMMAND [flags]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
	}
	b.WriteString("\n`aiops run` takes -config FILE and -set key=value; AIOPS_* environment variables set keys too (AIOPS_STORE__DSN sets store.dsn);\n" +
		"-check says what would keep it from starting (the configuration, a listen address taken, nats.store_dir in use) and starts nothing.\n" +
		"Every command answers -h with its own flags.\n")
	io.WriteString(w, b.String())
}

func printVersion(w io.Writer) error {
	_, err := fmt.Fprintf(w, "aiops %s\n", service.VersionString())
	return err
}
