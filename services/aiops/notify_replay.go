package aiops

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go"
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
// configuration (notifier.routes, notifier.delivery, notifier.state),
// bringing each incident's receivers to its state now (replayUsage,
// notifier.Replay), each removed once done. Against `aiops run` on this
// machine it needs no flags: the embedded NATS's token is read from
// data/nats-token.
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
			defer fmt.Fprint(stderr, replayUsage)
		}
		rest = append(rest, a)
	}
	// The configuration aiops run runs with (its nats, ingest, writer ...
	// sections are no error), or a notifier's own.
	var natsCfg EmbeddedNATSConfig
	cfg := RunConfig(&natsCfg)
	if err := cfg.Load("aiops notify replay", rest); err != nil {
		return err
	}
	// Against aiops run's embedded NATS (unless bus names another): the
	// address nats.listen gives, with the token aiops run made or reads.
	if pc := cfg.Platform(); natsCfg.Embedded && embeddedBusConflict(pc.Bus, natsCfg.Listen) == nil {
		url, token, err := natsCfg.clientURLToken()
		if err != nil {
			return service.Usage(fmt.Errorf("notify replay: %w", err))
		}
		pc.Bus.URLs, pc.Bus.Token, pc.Bus.TokenFile = []string{url}, token, ""
		cfg.SetPlatform(pc)
	}
	ncfg, _ := platform.SectionOf[notifier.Config](cfg, "notifier")
	if ncfg.Routes == "" && !dryRun {
		// Without routes every dead letter would "succeed" by going
		// nowhere, and be removed.
		return service.Usage(errors.New("notify replay: notifier.routes is not set: give the configuration the notifier runs with (-config FILE or -set notifier.routes=alertmanager.yml)"))
	}
	p, err := platform.Open(ctx, "notify-replay", cfg.Platform(), platform.WithLogOutput(stderr))
	if err != nil {
		if errors.Is(err, nats.ErrNoServers) {
			return fmt.Errorf("notify replay: no NATS server answered (is aiops run running? -set nats.listen=host:port names the address it runs on, bus.urls another NATS): %w", err)
		}
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
		// what the replay sends for it, and how that went
		sends, done := "sends it", "delivered, removed"
		switch dl.Replay {
		case notifier.ReplayResolve:
			sends, done = "resolved since: sends its resolve instead", "resolved since: its resolve delivered instead, removed"
		case notifier.ReplaySuperseded:
			sends = fmt.Sprintf("superseded: sends seq %d in its place", dl.Newer)
			done = fmt.Sprintf("superseded by seq %d, delivered in its place; removed", dl.Newer)
		case notifier.ReplayOutdated:
			sends = "outdated: the notifier handled a newer state since; sends nothing"
			done = "outdated: the notifier handled a newer state since; nothing sent, removed"
		}
		result := done
		switch {
		case dryRun && dl.Err != nil:
			result = fmt.Sprintf("dead letter: %s; a replay keeps it: %v", dl.Reason, dl.Err)
		case dryRun:
			now := dl.Now
			if now == "" {
				now = "not known"
			}
			result = fmt.Sprintf("dead letter: %s; incident now %s; %s", dl.Reason, now, sends)
		case errors.Is(dl.Err, notifier.ErrMuted):
			result = sends + "; muted now, kept (replay it once the mute ends): " + dl.Err.Error()
		case dl.Err != nil:
			result = sends + "; failed again, kept: " + dl.Err.Error()
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
		fmt.Fprintf(stderr, "%d done and removed, %d failed again (kept on %s)\n", delivered, failed, subject)
	}
	if failed > 0 {
		return fmt.Errorf("notify replay: %d dead letters failed again", failed)
	}
	return nil
}

// replayUsage is the replay's own flag and what it sends, told by -h after
// the configuration's flags.
const replayUsage = `  --dry-run
    	list the dead letters with why each was dead-lettered, the incident's
    	state now and what a replay sends, and send nothing

What a replay sends: a dead letter is an old state of its incident, so each
incident's receivers are brought to the state it is in now, as the
notifier's state bucket (notifier.state.bucket, key open.<incident id>) has it:
  - the dead letters of one incident go as one notification, the newest
    state; the others are superseded by it (removed with it, or kept with it);
  - an incident resolved since is sent its resolve instead, under the keys
    the notifier sent that resolve with, whatever mutes it: no trigger, no
    ticket opened or reopened for an incident that is over;
  - an incident the notifier handled a newer state of since, still open,
    is sent nothing: the dead letter would take its receivers back to an
    older state (an acknowledged ticket to open);
  - any other (open, or not known: its entry expired after
    notifier.state.max_age, or no state bucket) is sent as it is, as a
    first notice: PagerDuty gets a trigger before an acknowledge.
What is done is removed; what fails again, or is muted now, is kept.
`
