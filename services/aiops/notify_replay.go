package aiops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/notify/silence"
	"github.com/aiops-dev/aiops/pkg/platform"
	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/services/notifier"
)

// notifyReplay is `aiops notify replay [-config FILE] [-set key=value]...
// [--dry-run]`: the notifier's dead letters (incident events whose
// receivers stayed down through every redelivery, or refused them) are
// delivered again through the notifier's own path with the notifier's
// configuration (notifier.routes, notifier.delivery), each removed once
// delivered. Against `aiops run` on this machine it needs no flags: the
// embedded NATS's token is read from data/nats-token.
func notifyReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	dryRun := false
	var rest []string
	for _, a := range args {
		switch a {
		case "--dry-run", "-dry-run":
			dryRun = true
			continue
		case "-h", "-help", "--help":
			// After the configuration's flags, the replay's own.
			defer fmt.Fprintln(stderr, "  --dry-run\n    \tlist the dead letters with why each was dead-lettered, and send nothing")
		}
		rest = append(rest, a)
	}
	base := platform.DefaultConfig()
	if _, err := os.Stat(DefaultNATSConfig().GenerateTokenFile); err == nil {
		base.Bus.TokenFile = DefaultNATSConfig().GenerateTokenFile
	}
	cfg := platform.Assemble(base, []platform.Component{notifier.Component})
	if err := cfg.Load("aiops notify replay", rest); err != nil {
		return err
	}
	ncfg, _ := platform.SectionOf[notifier.Config](cfg, "notifier")
	if ncfg.Routes == "" && !dryRun {
		// Without routes every dead letter would "succeed" by going
		// nowhere, and be removed.
		return service.Usage(errors.New("notify replay: notifier.routes is not set: give the configuration the notifier runs with (-config FILE or -set notifier.routes=alertmanager.yml)"))
	}
	p, err := platform.Open(ctx, "notify-replay", cfg.Platform(), platform.WithLogOutput(stderr))
	if err != nil {
		return err
	}
	defer p.Close()
	proc, err := notifier.NewProcessor(ncfg, p.Log.Level(zerolog.WarnLevel))
	if err != nil {
		return err
	}
	records, err := bus.NewPublisher(p.JS)
	if err != nil {
		return err
	}
	proc.WithRecords(records)
	// The notifier's silences hold back what they mute now, as they would
	// live. (Inhibition needs the open incidents, which a replay does not
	// see: it is not applied.)
	silences, err := silence.Open(ctx, p.JS, ncfg.WithDefaults().Silences)
	if err != nil {
		return fmt.Errorf("notify replay: %w", err)
	}
	defer silences.Close()
	proc.WithSilences(silences)
	subject := ncfg.DeadLetterSubject()
	n := 0
	delivered, failed, err := notifier.Replay(ctx, p.JS, proc, subject, dryRun, func(dl notifier.DeadLetter) {
		n++
		result := "delivered, removed"
		switch {
		case dryRun:
			result = "dead letter: " + dl.Reason
		case errors.Is(dl.Err, notifier.ErrMuted):
			result = "muted now, kept (replay it once the mute ends): " + dl.Err.Error()
		case dl.Err != nil:
			result = "failed again, kept: " + dl.Err.Error()
		}
		fmt.Fprintf(stdout, "%d\tseq %d\tincident %s\t%s\t%s\t%s\n", n, dl.Seq, dl.IncidentID, dl.Status, dl.Stored.UTC().Format("2006-01-02T15:04:05Z"), result)
	})
	if err != nil {
		return err
	}
	switch {
	case n == 0:
		fmt.Fprintf(stderr, "no dead letters on %s\n", subject)
	case dryRun:
		fmt.Fprintf(stderr, "%d dead letters on %s (dry run: nothing sent)\n", n, subject)
	default:
		fmt.Fprintf(stderr, "%d delivered, %d failed again (kept on %s)\n", delivered, failed, subject)
	}
	if failed > 0 {
		return fmt.Errorf("notify replay: %d dead letters failed again", failed)
	}
	return nil
}
