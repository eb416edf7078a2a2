package aiops

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/notify/amconfig"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
	"github.com/aiops-dev/aiops/pkg/service"
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
  aiops notify send-test --config alertmanager.yml --receiver NAME
      renders a sample incident and delivers it to that receiver's webhooks
      through the real delivery path (retries and signing included),
      printing each attempt; exit 0 once every webhook answered 2xx
`

func notifyMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) >= 2 && args[0] == "routes" && args[1] == "test":
		return routesTest(args[2:], stdout, stderr)
	case len(args) >= 1 && args[0] == "send-test":
		return sendTest(ctx, args[1:], stdout, stderr)
	case len(args) >= 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help"):
		fmt.Fprint(stderr, notifyUsage)
		return nil
	}
	fmt.Fprint(stderr, notifyUsage)
	return service.Usage(errors.New(`notify: want "routes test" or "send-test"`))
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
	if err := fs.Parse(args); err != nil {
		return service.Usage(err)
	}
	if *file == "" || *name == "" {
		return service.Usage(errors.New("notify send-test: --config and --receiver are required"))
	}
	cfg, err := amconfig.Load(*file)
	if err != nil {
		return service.Usage(err)
	}
	recv, ok := cfg.Receiver(*name)
	if !ok {
		return service.Usage(fmt.Errorf("notify send-test: no receiver %q in %s", *name, *file))
	}
	client, err := webhook.New(webhook.DefaultConfig(), webhook.WithRecorder(webhook.RecorderFunc(func(a webhook.Attempt) {
		status := fmt.Sprint(a.StatusCode)
		if a.Error != "" {
			status += " " + a.Error
		}
		fmt.Fprintf(stdout, "%s attempt %d: %s in %s%s\n", a.Receiver, a.Number, status, a.Duration.Round(time.Millisecond), map[bool]string{true: " (retrying)"}[a.Retrying])
	})))
	if err != nil {
		return err
	}
	inc := webhook.SampleIncident()
	var failed []string
	deliver := func(kind, url string, body []byte, secretFile string) {
		req := webhook.Request{Receiver: recv.Name, URL: url, Body: body,
			IdempotencyKey: event.DerivedID(time.Now(), "send-test", recv.Name, url)}
		if secretFile != "" {
			secret, err := webhook.ReadSecretFile(secretFile)
			if err != nil {
				failed = append(failed, kind+": "+err.Error())
				return
			}
			req.Secrets = [][]byte{secret}
		}
		if _, err := client.Deliver(ctx, req); err != nil {
			failed = append(failed, kind+": "+err.Error())
			return
		}
		fmt.Fprintf(stdout, "%s: delivered (%s)\n", recv.Name, kind)
	}
	for _, wc := range recv.WebhookConfigs {
		body, err := webhook.Alertmanager(inc, webhook.AlertmanagerOptions{Receiver: recv.Name})
		if err != nil {
			return err
		}
		deliver("webhook_configs", urlOf(wc.URL, wc.URLFile), body, "")
	}
	for _, wc := range recv.AiopsWebhookConfigs {
		body, err := webhook.Generic(inc)
		if err != nil {
			return err
		}
		deliver("aiops_webhook_configs", urlOf(wc.URL, wc.URLFile), body, wc.SecretFile)
	}
	if len(failed) > 0 {
		return fmt.Errorf("notify send-test: not delivered: %s", strings.Join(failed, "; "))
	}
	return nil
}

func urlOf(url, file string) string {
	if file == "" {
		return url
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return url
	}
	return strings.TrimSpace(string(data))
}
