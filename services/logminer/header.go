package logminer

import (
	"sync"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/logmine"
)

// Format values with a meaning of their own in Config.Formats and
// Config.DefaultFormat.
const (
	FormatAuto = logmine.FormatAuto // detect the header from the first lines
	FormatNone = "none"             // mine the whole message
)

// maxDetecting bounds the services whose header is being detected at once,
// and maxDecided those whose header is known: each holds only a vote count
// or a kind, but the maps must not grow with every service name a producer
// invents. A new service takes the slot of the detection that started
// first when all are taken (a service that sent fewer than
// logmine.DetectSampleLines lines since; its next line starts over);
// services beyond maxDecided are mined whole.
const (
	maxDetecting = 10_000
	maxDecided   = 100_000
)

// headers detects each service's header (for services configured auto):
// its first logmine.DetectSampleLines lines vote for the header kinds that
// split them, and the kind with the most votes, if it split at least half,
// is that service's header from then on (logged and exported as
// aiops_logminer_header_detected). Until then each line is split by the
// first kind that takes it, so no line waits. The decisions are saved with
// the miner's state (restore); a detection under way starts over after a
// restart.
type headers struct {
	mu      sync.Mutex
	log     zerolog.Logger
	decided map[string]logmine.Detection
	votes   map[string]*votes
	// started holds the services in the order their detection started,
	// oldest first; an entry whose detection ended (decided, or its slot
	// taken) is skipped. started[0:head] are gone.
	started []started
	head    int
	seq     uint64
}

type started struct {
	svc string
	seq uint64 // the votes' seq: the same detection
}

type votes struct {
	lines  int
	seq    uint64
	counts map[logmine.HeaderKind]int
}

func newHeaders(log zerolog.Logger) *headers {
	return &headers{log: log, decided: map[string]logmine.Detection{}, votes: map[string]*votes{}}
}

// split returns the header of line for service svc; ok is false when no
// header kind applies (the message is then mined whole).
func (h *headers) split(svc, line string) (logmine.Header, bool) {
	h.mu.Lock()
	d, done := h.decided[svc]
	h.mu.Unlock()
	if done {
		if d.Kind == logmine.HeaderNone {
			return logmine.Header{}, false
		}
		return logmine.SplitHeader(d.Kind, line)
	}
	var first logmine.Header
	found := false
	var took [8]logmine.HeaderKind
	n := 0
	for _, k := range logmine.HeaderKinds() {
		if hd, ok := logmine.SplitHeader(k, line); ok {
			if !found {
				first, found = hd, true
			}
			took[n] = k
			n++
		}
	}
	h.vote(svc, took[:n])
	return first, found
}

func (h *headers) vote(svc string, took []logmine.HeaderKind) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, done := h.decided[svc]; done {
		return
	}
	v := h.votes[svc]
	if v == nil {
		if len(h.decided) >= maxDecided {
			return
		}
		if len(h.votes) >= maxDetecting {
			h.dropOldest()
		}
		h.seq++
		v = &votes{seq: h.seq, counts: map[logmine.HeaderKind]int{}}
		h.votes[svc] = v
		h.started = append(h.started, started{svc, v.seq})
	}
	v.lines++
	for _, k := range took {
		v.counts[k]++
	}
	if v.lines < logmine.DetectSampleLines {
		return
	}
	d := logmine.Detection{Kind: logmine.HeaderNone, Sampled: v.lines}
	for _, k := range logmine.HeaderKinds() { // preference order breaks ties
		if c := v.counts[k]; c > d.Matched && 2*c >= v.lines {
			d.Kind, d.Matched = k, c
		}
	}
	h.decided[svc] = d
	delete(h.votes, svc)
	h.log.Info().Str("service", svc).Str("header", string(d.Kind)).Int("matched", d.Matched).Int("sampled", d.Sampled).
		Msg("log header detected")
}

// dropOldest ends the detection that started first and is still going.
func (h *headers) dropOldest() {
	for ; h.head < len(h.started); h.head++ {
		st := h.started[h.head]
		if v := h.votes[st.svc]; v != nil && v.seq == st.seq {
			delete(h.votes, st.svc)
			h.head++
			break
		}
	}
	// keep the order's memory bounded by the detections going on
	if h.head > maxDetecting {
		live := h.started[:0]
		for _, st := range h.started[h.head:] {
			if v := h.votes[st.svc]; v != nil && v.seq == st.seq {
				live = append(live, st)
			}
		}
		clear(h.started[len(live):])
		h.started, h.head = live, 0
	}
}

// restore takes the decisions a saved state holds (at most maxDecided).
func (h *headers) restore(decided map[string]logmine.Detection) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for svc, d := range decided {
		if len(h.decided) >= maxDecided {
			break
		}
		h.decided[svc] = d
		delete(h.votes, svc)
	}
}

// detected returns the decisions made so far.
func (h *headers) detected() map[string]logmine.Detection {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]logmine.Detection, len(h.decided))
	for k, v := range h.decided {
		out[k] = v
	}
	return out
}
