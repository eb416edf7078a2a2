package detector

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
)

// partitions are the metric partitions (streams.metric_partitions) an
// instance owns. The stream stores a sample published on
// events.metric.<service> under the partition of its service, but one
// published straight to a partition subject (events.metric.<p>.<service>)
// is stored as sent: on another partition than its service's, it reached
// an instance whose series it is not, and a second detector scored the
// series beside the owner's, with its own baseline and episodes. Process
// leaves such a sample to the owner's partition: it is acked unscored and
// counted (samples_ignored_total{reason="other_partition"}); the writer,
// which reads every subject, stores it all the same.
type partitions struct {
	n   uint32
	own []bool // by partition
}

// owns reports whether the partition of service is one of p's: the
// partition the stream's subject transform gives the subject token
// (partition(n,1): FNV-1a 32 of the token, modulo n).
func (p *partitions) owns(service string) bool {
	return p.own[p.of(service)]
}

func (p *partitions) of(service string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(event.SubjectToken(service)))
	return h.Sum32() % p.n
}

// partitionDestination is the stream's subject transform of n partitions
// (bus.WithMetricPartitions).
const partitionDestination = "events.metric.{{partition(%d,1)}}.{{wildcard(1)}}"

// ownedPartitions reads which partitions the consumer c owns: those its
// filters name (bus.MetricPartitionFilter), out of the number the stream's
// subject transform makes. nil, no check, when a filter is not one
// partition's (the instance reads them all) or the stream makes none.
func ownedPartitions(ctx context.Context, js jetstream.JetStream, c bus.ConsumerConfig) (*partitions, error) {
	var ps []int
	for _, f := range c.FilterSubjects {
		tok, ok := strings.CutPrefix(f, "events.metric.")
		if !ok {
			return nil, nil
		}
		tok, ok = strings.CutSuffix(tok, ".>")
		p, err := strconv.Atoi(tok)
		if !ok || err != nil || p < 0 || tok != strconv.Itoa(p) {
			return nil, nil
		}
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return nil, nil
	}
	st, err := js.Stream(ctx, c.Stream)
	if err != nil {
		return nil, fmt.Errorf("detector: stream %s: %w", c.Stream, err)
	}
	n := 0
	if tr := st.CachedInfo().Config.SubjectTransform; tr != nil && tr.Source == "events.metric.*" {
		if _, err := fmt.Sscanf(tr.Destination, partitionDestination, &n); err != nil || fmt.Sprintf(partitionDestination, n) != tr.Destination {
			n = 0
		}
	}
	if n <= 0 {
		return nil, nil // no partitions: the filter only takes what was published to it
	}
	own := make([]bool, n)
	for _, p := range ps {
		if p >= n {
			return nil, fmt.Errorf("%w: detector.consumer.filter_subjects: partition %d, the stream %s has %d (streams.metric_partitions)", ErrInvalidConfig, p, c.Stream, n)
		}
		own[p] = true
	}
	return &partitions{n: uint32(n), own: own}, nil
}

// strayLogEvery bounds the log lines about samples of another partition.
const strayLogEvery = time.Minute

// stray counts and, at most once every strayLogEvery, logs a sample of a
// service another partition owns.
func (s *Service) stray(e *event.Envelope, parts *partitions, now time.Time) {
	s.m.ignored.WithLabelValues("other_partition").Inc()
	s.strayed.Store(true)
	n := s.strayLog.hit(now, strayLogEvery)
	if n == 0 {
		return
	}
	s.log.Warn().Str("event", e.ID).Str("service", e.Service).Uint32("partition", parts.of(e.Service)).Uint32("partitions", parts.n).Int64("samples", n).
		Msg("samples of another partition than this instance's, not scored here (samples_ignored_total{reason=\"other_partition\"}): published straight to another partition's subject (publish to events.metric.<service>), or the stream's partition count changed (read again within a minute)")
}

// partitionsReadEvery bounds how often samples of other partitions make
// an instance read the stream's partition count again.
const partitionsReadEvery = time.Minute

// refreshPartitions reads the partitions the instance owns again when
// samples of other partitions came since the last read, at most every
// partitionsReadEvery. The count is read at start; raised or lowered on
// the stream while the instance runs (streams.metric_partitions changed,
// another service's start updating the stream), every sample the stream
// now gives this instance's partition would be another's by the old count,
// and be left unscored until a restart.
func (s *Service) refreshPartitions(ctx context.Context, now time.Time) {
	if s.readParts == nil || !s.strayed.Load() || now.Sub(s.partsRead) < partitionsReadEvery {
		return
	}
	s.partsRead = now
	s.strayed.Store(false)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	parts, err := s.readParts(ctx)
	if err != nil {
		s.log.Warn().Err(err).Msg("the stream's metric partitions could not be read again: the count read before stays")
		return
	}
	if old := s.parts.Load(); parts == nil || old == nil || parts.n != old.n {
		var n uint32
		if parts != nil {
			n = parts.n
		}
		s.log.Info().Uint32("partitions", n).Msg("the stream's metric partition count changed: samples are owned by the new count")
	}
	s.parts.Store(parts)
}
