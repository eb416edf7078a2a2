package aiops

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/notify/amconfig"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/services/notifier"
)

// notifyCommand is `aiops notify`: the notifier's routing and delivery on
// an Alertmanager configuration file, without the pipeline.
func notifyCommand(ctx context.Context, args []string) error {
	return notifyMain(ctx, args, os.Stdout, os.Stderr)
}

const notifyUsage = `usage:
  aiops notify routes test --config alertmanager.yml [--tree] label=value ...
      prints the receivers an alert (or incident) with these labels goes to,
      comma-joined, as amtool config routes test prints them
  aiops notify send-test --config alertmanager.yml --receiver NAME [--incident incident.json]
      delivers a sample incident (or the one in incident.json) to every
      integration of that receiver through the notifier's delivery path
      (payloads, templates, signing, retries), printing each attempt;
      exit 0 once every integration answered 2xx
  aiops notify template render --template FILE [--incident incident.json] [--format json|text]
      renders a custom payload template (aiops_template_configs) against a
      sample incident, or the one in incident.json (an aiops.incident.v1
      payload as aiops_webhook_configs sends it); --format json (the
      default) also checks that the output is JSON
  aiops notify replay [-config aiops.yaml] [-set key=value]... [--dry-run]
      delivers the notifier's dead letters again (incident events whose
      receivers stayed down through every redelivery, or refused them)
      through the notifier's path and configuration, bringing each
      incident's receivers to its state now: one notification per
      incident, its newest state, or its resolve when it was resolved
      since; each one done is removed; --dry-run lists them with the
      reason and what a replay would send. Against aiops run
      on this machine it reads the NATS token from data/nats-token
`

func notifyMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) >= 2 && args[0] == "routes" && args[1] == "test":
		return routesTest(args[2:], stdout, stderr)
	case len(args) >= 1 && args[0] == "send-test":
		return sendTest(ctx, args[1:], stdout, stderr)
	case len(args) >= 2 && args[0] == "template" && args[1] == "render":
		return templateRender(args[2:], stdout, stderr)
	case len(args) >= 1 && args[0] == "replay":
		return notifyReplay(ctx, args[1:], stdout, stderr)
	case len(args) >= 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help"):
		fmt.Fprint(stderr, notifyUsage)
		return nil
	}
	fmt.Fprint(stderr, notifyUsage)
	return service.Usage(errors.New(`notify: want "routes test", "send-test", "template render" or "replay"`))
}

func routesTest(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("aiops notify routes test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "Alertmanager configuration file")
	tree := fs.Bool("tree", false, "print the matched routes as a tree, as amtool --tree does")
	if err := fs.Parse(args); err != nil {
		return service.Usage(err)
	}
	if *file == "" {
		return service.Usage(errors.New("notify routes test: --config is required"))
	}
	cfg, err := amconfig.Load(*file)
	if err != nil {
		return service.Usage(err)
	}
	labels, err := amconfig.ParseLabels(fs.Args())
	if err != nil {
		return service.Usage(err)
	}
	_, err = io.WriteString(stdout, amconfig.FormatRoutesTest(cfg, labels, *tree))
	return err
}

func sendTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("aiops notify send-test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "Alertmanager configuration file")
	name := fs.String("receiver", "", "the receiver to deliver the sample incident to")
	incFile := fs.String("incident", "", "an incident as JSON (aiops.incident.v1); default a sample incident")
	if err := fs.Parse(args); err != nil {
		return service.Usage(err)
	}
	if *file == "" || *name == "" {
		return service.Usage(errors.New("notify send-test: --config and --receiver are required"))
	}
	inc, err := loadIncident(*incFile)
	if err != nil {
		return service.Usage(err)
	}
	// The notifier's own processor: the same integrations, payloads,
	// templates, signing and client the service uses, with every attempt
	// printed.
	printAttempt := webhook.RecorderFunc(func(a webhook.Attempt) {
		status := fmt.Sprint(a.StatusCode)
		if a.Error != "" {
			status += " " + a.Error
		}
		fmt.Fprintf(stdout, "%s attempt %d (%s): %s in %s%s\n", a.Receiver, a.Number, a.IdempotencyKey, status,
			a.Duration.Round(time.Millisecond), map[bool]string{true: " (retrying)"}[a.Retrying])
	})
	proc, err := notifier.NewProcessor(notifier.Config{Routes: *file}, zerolog.Nop(), webhook.WithRecorder(printAttempt))
	if err != nil {
		return service.Usage(err)
	}
	if err := proc.SendTest(ctx, *name, inc); err != nil {
		if errors.Is(err, notifier.ErrInvalidConfig) {
			return service.Usage(fmt.Errorf("notify send-test: %w", err))
		}
		return fmt.Errorf("notify send-test: not delivered: %w", err)
	}
	fmt.Fprintf(stdout, "%s: delivered\n", *name)
	return nil
}

// loadIncident reads an incident file, or gives the sample incident.
func loadIncident(file string) (webhook.Incident, error) {
	if file == "" {
		return webhook.SampleIncident(), nil
	}
	f, err := os.Open(file)
	if err != nil {
		return webhook.Incident{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, webhook.MaxIncidentJSON+1))
	if err != nil {
		return webhook.Incident{}, err
	}
	inc, err := webhook.ParseGeneric(data)
	if err != nil {
		return webhook.Incident{}, fmt.Errorf("%s: %w", file, err)
	}
	return inc, nil
}

func templateRender(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("aiops notify template render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("template", "", "the template file (Go text/template of the incident)")
	incFile := fs.String("incident", "", "an incident as JSON (aiops.incident.v1); default a sample incident")
	format := fs.String("format", "json", "json: the output must be JSON (as for content_type application/json); text: anything")
	if err := fs.Parse(args); err != nil {
		return service.Usage(err)
	}
	if *file == "" {
		return service.Usage(errors.New("notify template render: --template is required"))
	}
	tf := map[string]webhook.TemplateFormat{"json": webhook.TemplateJSON, "text": webhook.TemplateText}
	f, ok := tf[*format]
	if !ok {
		return service.Usage(fmt.Errorf("notify template render: --format %q, want json or text", *format))
	}
	text, err := os.ReadFile(*file)
	if err != nil {
		return service.Usage(err)
	}
	if len(text) > amconfig.MaxTemplateFileSize {
		return service.Usage(fmt.Errorf("notify template render: %s: larger than %d bytes", *file, amconfig.MaxTemplateFileSize))
	}
	inc, err := loadIncident(*incFile)
	if err != nil {
		return service.Usage(err)
	}
	t, err := webhook.ParseTemplate(filepath.Base(*file), string(text), f)
	if err != nil {
		return service.Usage(err)
	}
	out, err := t.Render(inc)
	if err != nil {
		return err
	}
	if _, err := stdout.Write(out); err != nil {
		return err
	}
	if len(out) > 0 && out[len(out)-1] != '\n' {
		_, err = io.WriteString(stdout, "\n")
	}
	return err
}
