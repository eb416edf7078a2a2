package logminer

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/stage"
)

// ErrInvalidConfig is wrapped by every Validate error.
var ErrInvalidConfig = fmt.Errorf("logminer: %w", config.ErrInvalidConfig)

// Config is the logminer's part of a service config.
type Config struct {
	// Consumer is the durable consumer of raw logs: Stream defaults to
	// EVENTS, Durable to "logminer" and FilterSubjects to events.log.*
	// (raw logs; templated logs have a fourth token).
	Consumer bus.ConsumerConfig `yaml:"consumer"`
	// MaxTemplates bounds the templates the miner holds (0: logmine's
	// default, 50,000); beyond it the least recently seen is evicted.
	// Every other mining parameter is logmine.DefaultConfig: the same for
	// every log source.
	MaxTemplates int `yaml:"max_templates"`
	// MaxTemplateBytes bounds the heap the templates take (0: logmine's
	// default, 256 MiB), estimated from their text and tokens: a
	// template of real logs takes about 500 bytes, but one mined from a
	// line of one-letter words up to about ten times the line, so count
	// alone would let lines built for it take many GB (README, "Memory").
	MaxTemplateBytes int64 `yaml:"max_template_bytes"`
	// MaxLineBytes is how much of a message is mined (default
	// DefaultMaxLineBytes, 16 KiB): a longer message is mined on its
	// first MaxLineBytes (cut on a character boundary), so its template
	// and parameters cover that prefix, while its templated copy keeps
	// the whole message.
	MaxLineBytes int `yaml:"max_line_bytes"`
	// Formats maps a service name to the header format of its messages in
	// the logparser benchmark's log_format notation
	// (`<Date> <Time> <Level> <Component>: <Content>`, regular-expression
	// fragments such as `(\[<PID>\])?` included), for producers that ship
	// whole lines. The miner then works on <Content>, and a <Level> field
	// gives the severity of events that have none. "auto" detects the
	// header (syslog, JSON, logfmt, Log4j, access log, klog; see
	// logmine.DetectHeader) from the service's first lines; "none" mines
	// the whole message. Services not named here take DefaultFormat.
	Formats map[string]string `yaml:"formats"`
	// DefaultFormat is the format of services not named in Formats:
	// "auto" (the default) or "none".
	DefaultFormat string `yaml:"default_format"`
	// Interval is the length of one count interval (default 1m). Counts
	// are emitted at multiples of it (wall clock), one sample per service
	// and template.
	Interval time.Duration `yaml:"interval"`
	// MaxLateness bounds how late a line may be mined and still be
	// counted (default Interval): a line is counted in the interval open
	// when it is mined only if its own time (the envelope's) is at most
	// MaxLateness before that interval's start. An older one (a backlog
	// after an outage, a shipper's retries, a replay) is templated but not
	// counted, nor in error bursts: counted now, hours of logs flushed at
	// once would look like a burst now. A line timed ahead of the clock is
	// counted in the open interval.
	MaxLateness time.Duration `yaml:"max_lateness"`
	// IdleIntervals is how many intervals a series keeps getting samples
	// (of 0) after its last line (default 5), so the detector sees a
	// message stop; after that the series is forgotten, but for its
	// error average when it has one (kept quiet, up to MaxSeries of them).
	IdleIntervals int `yaml:"idle_intervals"`
	// MaxSeries bounds the (service, template) series counted at once
	// (default 100000); lines of new series beyond it are not counted
	// (they are still templated), and the drop is counted.
	MaxSeries int `yaml:"max_series"`
	// DisableTemplateEvents stops the log_template events (new and
	// generalised templates, event.KindLogTemplate, which the writer
	// stores), for a deployment that wants only the templated logs and
	// the counts.
	DisableTemplateEvents bool `yaml:"disable_template_events"`
	// Burst flags bursts of error-level templates.
	Burst BurstConfig `yaml:"burst"`
	// State is where the miner's state is kept between runs.
	State StateConfig `yaml:"state"`
	// StoreConsumer is the writer's durable consumer on the stream
	// (writer.consumer.durable, default "writer"), and MaxStoreBacklog
	// the part of the stream's limit (default 0.9, as
	// ingest.max_store_backlog) that the events it has not acked may
	// take before the log miner holds its templated copies: past the
	// limit the stream discards its oldest events, stored or not, and
	// the copies of logs the gateway accepted below its bound would push
	// out logs it answered 200 for (README, "Room in EVENTS").
	StoreConsumer   string  `yaml:"store_consumer"`
	MaxStoreBacklog float64 `yaml:"max_store_backlog"`
}

// DefaultMaxStoreBacklog is Config.MaxStoreBacklog when left zero: the
// gateway's default bound, at which it stops accepting events.
const DefaultMaxStoreBacklog = 0.9

// BurstConfig: a series (service, template) bursts in an interval when it
// has at least MinCount lines of error or critical severity and more than
// Factor times the moving average of its error lines per interval (an
// exponentially weighted average with weight Alpha for the newest
// interval; intervals without a line of the template leave it as it was).
// A template that starts logging errors has an average of 0, so MinCount
// errors in its first interval are a burst; that interval then seeds the
// average, so a steady error rate is flagged once, not again in every
// interval the average takes to climb, nor when it recurs after a silence.
type BurstConfig struct {
	Disabled bool    `yaml:"disabled"`
	Factor   float64 `yaml:"factor"`    // default 3
	MinCount int     `yaml:"min_count"` // default 10
	Alpha    float64 `yaml:"alpha"`     // default 0.2
}

// StateConfig says where and how often the state is saved (default: the
// object store "logminer", the consumer's durable name as the key, every
// 30s).
type StateConfig = stage.StateConfig

// DefaultMaxLineBytes is Config.MaxLineBytes when left zero: logmine's,
// which `aiops logs parse` mines too, so that a long message has the same
// template live and offline; short enough that the templated copy of
// every log the gateway accepts (a message of at most
// event.MaxLogMessageBytes) passes the logminer's bound (copyBound).
const DefaultMaxLineBytes = logmine.DefaultMaxLineBytes

// MaxMaxLineBytes bounds max_line_bytes: up to it, the templated copy of
// every log the gateway accepts passes the logminer's bound (copyBound
// charges the mined prefix up to eight times).
const MaxMaxLineBytes = 48 << 10

// DefaultConfig is the logminer with no configuration at all.
func DefaultConfig() Config { return Config{}.WithDefaults() }

// WithDefaults fills what is unset.
func (c Config) WithDefaults() Config {
	c.Consumer = c.Consumer.Of(bus.StreamEvents, "logminer", event.KindFilter(event.KindLog))
	if c.Consumer.MaxAckPending == 0 {
		// The bus default, set here because the logminer sizes its
		// queue of deliveries awaiting publish acks by it.
		c.Consumer.MaxAckPending = 1024
	}
	if c.DefaultFormat == "" {
		c.DefaultFormat = FormatAuto
	}
	if c.Interval == 0 {
		c.Interval = time.Minute
	}
	if c.MaxLateness == 0 {
		c.MaxLateness = c.Interval
	}
	if c.MaxLineBytes == 0 {
		c.MaxLineBytes = DefaultMaxLineBytes
	}
	if c.IdleIntervals == 0 {
		c.IdleIntervals = 5
	}
	if c.MaxSeries == 0 {
		c.MaxSeries = 100_000
	}
	if c.Burst.Factor == 0 {
		c.Burst.Factor = 3
	}
	if c.Burst.MinCount == 0 {
		c.Burst.MinCount = 10
	}
	if c.Burst.Alpha == 0 {
		c.Burst.Alpha = 0.2
	}
	c.State = c.State.WithDefaults("logminer", c.Consumer.Durable, 30*time.Second)
	if c.StoreConsumer == "" {
		c.StoreConsumer = "writer"
	}
	if c.MaxStoreBacklog == 0 {
		c.MaxStoreBacklog = DefaultMaxStoreBacklog
	}
	return c
}

// Validate names the field that is wrong; unset fields take their defaults.
func (c Config) Validate() error {
	c = c.WithDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: logminer.%s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if err := c.Consumer.Validate(); err != nil {
		return fmt.Errorf("%w: logminer.consumer: %w", ErrInvalidConfig, err)
	}
	for _, s := range c.Consumer.FilterSubjects {
		if !rawLogSubject(s) {
			// The miner's outputs must never come back to it.
			return bad("consumer.filter_subjects: %q does not match raw logs only: want events.log.* or events.log.<service> (events.log.> would feed the miner its own output)", s)
		}
	}
	if c.MaxTemplates < 0 {
		return bad("max_templates: must not be negative, got %d", c.MaxTemplates)
	}
	if c.MaxTemplates > 0 {
		mc := logmine.DefaultConfig()
		mc.MaxTemplates = c.MaxTemplates
		if err := mc.Validate(); err != nil {
			return bad("max_templates: %v", err)
		}
	}
	if c.MaxTemplateBytes != 0 && c.MaxTemplateBytes < logmine.MinMaxTemplateBytes {
		return bad("max_template_bytes: must be 0 (the default, %d) or at least %d, got %d", logmine.DefaultMaxTemplateBytes, logmine.MinMaxTemplateBytes, c.MaxTemplateBytes)
	}
	if c.MaxLineBytes < 256 || c.MaxLineBytes > MaxMaxLineBytes {
		return bad("max_line_bytes: must be in [256, %d] (longer, the templated copy of a log the gateway accepts could be refused), got %d", MaxMaxLineBytes, c.MaxLineBytes)
	}
	for svc, spec := range c.Formats {
		if svc == "" {
			return bad("formats: empty service name")
		}
		if spec == FormatAuto || spec == FormatNone {
			continue
		}
		if _, err := logmine.CompileFormat(spec); err != nil {
			return bad("formats.%s: %v (or %q, %q)", svc, err, FormatAuto, FormatNone)
		}
	}
	if c.DefaultFormat != FormatAuto && c.DefaultFormat != FormatNone {
		return bad("default_format: want %q or %q, got %q", FormatAuto, FormatNone, c.DefaultFormat)
	}
	switch {
	case c.Interval < time.Second:
		return bad("interval: must be at least 1s, got %s", c.Interval)
	case c.MaxLateness < 0:
		return bad("max_lateness: must not be negative, got %s", c.MaxLateness)
	case c.IdleIntervals < 0:
		return bad("idle_intervals: must not be negative, got %d", c.IdleIntervals)
	case c.MaxSeries < 0:
		return bad("max_series: must not be negative, got %d", c.MaxSeries)
	case !(c.Burst.Factor >= 1) || math.IsInf(c.Burst.Factor, 1): // NaN too
		return bad("burst.factor: must be a finite number of at least 1, got %g", c.Burst.Factor)
	case c.Burst.MinCount < 1:
		return bad("burst.min_count: must be at least 1, got %d", c.Burst.MinCount)
	case !(c.Burst.Alpha > 0 && c.Burst.Alpha <= 1):
		return bad("burst.alpha: must be in (0, 1], got %g", c.Burst.Alpha)
	case strings.ContainsAny(c.StoreConsumer, ". \t\r\n*>/\\"):
		return bad("store_consumer: %q is not a consumer name (no '.', '*', '>', '/', spaces): want the writer's writer.consumer.durable", c.StoreConsumer)
	case !(c.MaxStoreBacklog > 0 && c.MaxStoreBacklog <= 1): // NaN too
		return bad("max_store_backlog: want a part of the stream's limit above 0 and at most 1, got %g", c.MaxStoreBacklog)
	case c.State.SaveEvery < time.Second && !c.State.Disabled:
		return bad("state.save_every: must be at least 1s, got %s", c.State.SaveEvery)
	}
	if err := c.State.Validate(); err != nil {
		return bad("%s", err)
	}
	return nil
}

// rawLogSubject reports whether a filter subject only matches raw logs:
// three tokens, the last a service or *.
func rawLogSubject(s string) bool {
	const prefix = "events.log."
	if len(s) <= len(prefix) || s[:len(prefix)] != prefix {
		return false
	}
	rest := s[len(prefix):]
	return rest != ">" && !strings.ContainsAny(rest, ". \t")
}
