package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/httpapi"
	"github.com/aiops-dev/aiops/pkg/notify/amconfig"
	"github.com/aiops-dev/aiops/pkg/notify/silence"
	"github.com/aiops-dev/aiops/pkg/service"
)

// Muter says which silences mute a notification with these labels at t
// (their ids; none: it goes out). *silence.Store is one.
type Muter interface {
	Mutes(labels map[string]string, t time.Time) []string
}

// WithSilences mutes the notifications that m says are silenced.
func (p *Processor) WithSilences(m Muter) *Processor {
	p.silences = m
	return p
}

// silenced names the silences that mute a notification of an incident at
// time at: those active then (a delayed event is muted as it would have
// been on time) and those active now (what a person silenced just now
// after seeing the incident, whose events carry the slightly earlier time
// of their signals).
func (p *Processor) silenced(labels map[string]string, at time.Time) []string {
	if p.silences == nil {
		return nil
	}
	if ids := p.silences.Mutes(labels, at); len(ids) > 0 {
		return ids
	}
	return p.silences.Mutes(labels, time.Now())
}

// SilencesAPI serves silences in the shape of Alertmanager's API v2, so
// that amtool (`amtool silence add|query|expire --alertmanager.url
// http://HOST:PORT`) and other Alertmanager clients manage aiops's
// silences:
//
//	GET    /api/v2/silences?filter=<matcher>...
//	POST   /api/v2/silences           (a PostableSilence; an id edits that silence)
//	GET    /api/v2/silence/{id}
//	DELETE /api/v2/silence/{id}       (expires it)
//	GET    /api/v2/status
//	GET    /api/v2/alerts?filter=<matcher>...&active=&silenced=&inhibited=&receiver=
//	GET    /api/v2/alerts/groups?     (the same parameters)
//	                                  (the open incidents: alerts.go)
//
// Every request wants the bearer token (amtool sends it with
// --http.config.file). Errors of these endpoints are JSON strings, as
// Alertmanager's are, because its clients decode them so; an unknown path
// (404), a method a path does not take (405, with Allow) and a missing
// token (401) answer {"error": "..."}, as every aiops API does.
type SilencesAPI struct {
	*httpapi.Server
	store  *silence.Store
	alerts func(context.Context, time.Time) ([]gettableAlert, error) // nil: none listed
	// listing lets one list of the alerts be made at a time: a standby
	// reads the whole state bucket for each, and polling dashboards
	// would otherwise hold as many copies at once.
	listing chan struct{}
	// lists holds a slot for each list of the silences being answered
	// (MaxConcurrentLists), which one waits listWait for.
	lists    chan struct{}
	listWait time.Duration
	started  time.Time
}

// MaxConcurrentLists bounds the lists of the silences the API answers at
// once. A list is built whole in memory, up to silences.max_bytes (64
// MiB), so amtool and scripts in a loop would otherwise multiply it until
// the process, the embedded NATS with it, runs out of memory.
const MaxConcurrentLists = 4

// MaxSilenceBody bounds one posted silence.
const MaxSilenceBody = 256 << 10

// NewSilencesAPI listens on cfg.Listen for store, and lists the open
// incidents proc routes as alerts (nil: none).
func NewSilencesAPI(store *silence.Store, proc *Processor, cfg httpapi.Config, log zerolog.Logger) (*SilencesAPI, error) {
	token, err := cfg.ResolveToken(log)
	if err != nil {
		return nil, errors.New("notifier.api." + err.Error())
	}
	a := &SilencesAPI{store: store, started: time.Now().UTC(), listing: make(chan struct{}, 1), lists: make(chan struct{}, MaxConcurrentLists), listWait: httpapi.SlotWait}
	if proc != nil {
		a.alerts = proc.Alerts
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v2/silences", a.list)
	mux.HandleFunc("POST /api/v2/silences", a.post)
	mux.HandleFunc("GET /api/v2/silence/{id}", a.get)
	mux.HandleFunc("DELETE /api/v2/silence/{id}", a.expire)
	mux.HandleFunc("GET /api/v2/status", a.status)
	mux.HandleFunc("GET /api/v2/alerts", a.listAlerts)
	mux.HandleFunc("GET /api/v2/alerts/groups", a.listAlertGroups)
	// What the mux itself would answer in plain text (another method, an
	// unknown path) is answered in JSON, as by every other aiops API.
	mux.HandleFunc("/api/v2/silences", httpapi.MethodNotAllowed("GET, HEAD, POST"))
	mux.HandleFunc("/api/v2/silence/{id}", httpapi.MethodNotAllowed("DELETE, GET, HEAD"))
	mux.HandleFunc("/api/v2/status", httpapi.MethodNotAllowed("GET, HEAD"))
	mux.HandleFunc("POST /api/v2/alerts", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", "GET, HEAD")
		httpapi.WriteError(w, http.StatusMethodNotAllowed, "the notifier lists the open incidents here; alerts go to the ingest gateway (POST /api/v2/alerts there, services/ingest/README.md)")
	})
	mux.HandleFunc("/api/v2/alerts", httpapi.MethodNotAllowed("GET, HEAD"))
	mux.HandleFunc("/api/v2/alerts/groups", httpapi.MethodNotAllowed("GET, HEAD"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteError(w, http.StatusNotFound, fmt.Sprintf("no path %q: the silences API serves /api/v2/silences, /api/v2/silence/{id}, /api/v2/alerts, /api/v2/alerts/groups and /api/v2/status", r.URL.Path))
	})
	if a.Server, err = httpapi.Listen(cfg.Listen, httpapi.BearerWithHint(token, "silences API", cfg.TokenHint(), mux)); err != nil {
		return nil, errors.New("notifier.api.listen: " + err.Error())
	}
	return a, nil
}

// gettable is a silence as the API lists it: with its state now.
type gettable struct {
	silence.Silence
	Status struct {
		State silence.State `json:"state"`
	} `json:"status"`
}

func (a *SilencesAPI) gettable(s silence.Silence, now time.Time) gettable {
	g := gettable{Silence: s}
	g.Status.State = s.StateAt(now)
	return g
}

func amError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(msg)
}

// filterOf reads a list's filter parameters, each checked by check
// (silence.FilterCheck) before it is compiled.
func filterOf(q url.Values, check func(amconfig.MatchType, string, string) error) (amconfig.Matchers, error) {
	var filter amconfig.Matchers
	for _, v := range q["filter"] {
		m, err := amconfig.ParseMatcherChecked(v, check)
		if err != nil {
			return nil, errors.New("bad matcher format: " + err.Error())
		}
		filter = append(filter, m)
	}
	return filter, nil
}

func (a *SilencesAPI) list(w http.ResponseWriter, r *http.Request) {
	if !httpapi.TakeSlot(r.Context(), a.lists, a.listWait) {
		w.Header().Set("Retry-After", "1")
		amError(w, http.StatusServiceUnavailable, fmt.Sprintf("the API is answering its limit of %d lists of the silences at once; retry shortly", MaxConcurrentLists))
		return
	}
	defer func() { <-a.lists }()
	filter, err := filterOf(r.URL.Query(), silence.FilterCheck())
	if err != nil {
		amError(w, http.StatusBadRequest, err.Error())
		return
	}
	now := time.Now()
	out := []gettable{}
	for _, s := range a.store.List(filter) {
		out = append(out, a.gettable(s, now))
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

func (a *SilencesAPI) post(w http.ResponseWriter, r *http.Request) {
	var s silence.Silence
	ok, err := httpapi.DecodeJSON(r, MaxSilenceBody, &s)
	if err != nil || !ok {
		if err == nil {
			err = errors.New("no silence in the body")
		}
		amError(w, httpapi.StatusOf(err), "the body is not a silence: "+err.Error())
		return
	}
	// The API's own checks, before the store's (Alertmanager's wording).
	now := time.Now()
	if !s.StartsAt.Before(s.EndsAt) {
		amError(w, http.StatusBadRequest, "Failed to create silence: start time must be before end time")
		return
	}
	if s.EndsAt.Before(now) {
		amError(w, http.StatusBadRequest, "Failed to create silence: end time can't be in the past")
		return
	}
	// The store's checks first: they bound what the regular expressions
	// compile to before anything compiles them.
	if err := s.Validate(); err != nil {
		amError(w, http.StatusBadRequest, err.Error())
		return
	}
	// Incidents are muted by their labels, whose severity is aiops's: a
	// silence of an alert's word (severity=page) would mute nothing.
	for _, m := range s.Matchers {
		if m.Name != "severity" {
			continue
		}
		if cm, err := m.Compile(); err == nil {
			if why := severityProblem(cm); why != "" {
				amError(w, http.StatusBadRequest, "Failed to create silence: "+why)
				return
			}
		}
	}
	id, err := a.store.Set(r.Context(), s)
	switch {
	case errors.Is(err, silence.ErrNotFound):
		amError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, silence.ErrInvalid), errors.Is(err, silence.ErrTooMany):
		amError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		amError(w, http.StatusInternalServerError, err.Error())
	default:
		httpapi.WriteJSON(w, http.StatusOK, map[string]string{"silenceID": id})
	}
}

func (a *SilencesAPI) get(w http.ResponseWriter, r *http.Request) {
	s, ok := a.store.Get(r.PathValue("id"))
	if !ok {
		amError(w, http.StatusNotFound, "silence not found")
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, a.gettable(s, time.Now()))
}

func (a *SilencesAPI) expire(w http.ResponseWriter, r *http.Request) {
	err := a.store.Expire(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, silence.ErrNotFound):
		amError(w, http.StatusNotFound, err.Error())
	case err != nil:
		amError(w, http.StatusInternalServerError, err.Error())
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// status answers what Alertmanager clients ask first. The configuration
// is not shown: an Alertmanager file holds receivers' URLs and keys.
func (a *SilencesAPI) status(w http.ResponseWriter, _ *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{
		"cluster": map[string]any{"status": "disabled", "peers": []any{}},
		"config":  map[string]string{"original": "# aiops does not show its configuration over the API\n"},
		"uptime":  a.started.Format(time.RFC3339Nano),
		"versionInfo": map[string]string{"version": "aiops-notifier " + service.VersionString(), "goVersion": runtime.Version(),
			"branch": "", "buildDate": "", "buildUser": "", "revision": ""},
	})
}

// listAlerts answers GET /api/v2/alerts as Alertmanager does, with the
// open incidents as its alerts. Of its parameters, filter, active,
// silenced, inhibited and receiver select; unprocessed is taken and means
// nothing (every incident is processed when it is listed).
func (a *SilencesAPI) listAlerts(w http.ResponseWriter, r *http.Request) {
	if out, _, ok := a.selectAlerts(w, r); ok {
		httpapi.WriteJSON(w, http.StatusOK, out)
	}
}

// listAlertGroups answers GET /api/v2/alerts/groups as Alertmanager does
// (groupAlerts), with listAlerts' parameters; dashboards that read an
// Alertmanager (Karma, Grafana) list its alerts so. As Alertmanager's,
// the receiver parameter selects groups by their route's receiver.
func (a *SilencesAPI) listAlertGroups(w http.ResponseWriter, r *http.Request) {
	out, f, ok := a.selectAlerts(w, r)
	if !ok {
		return
	}
	groups := groupAlerts(out)
	if f.receiver != nil {
		groups = slices.DeleteFunc(groups, func(g alertGroup) bool { return !f.receiver.Matches(g.Receiver.Name) })
	}
	httpapi.WriteJSON(w, http.StatusOK, groups)
}

// selectAlerts is the alerts r asks for, or false once it answered an
// error.
func (a *SilencesAPI) selectAlerts(w http.ResponseWriter, r *http.Request) ([]gettableAlert, alertsFilter, bool) {
	q := r.URL.Query()
	f := alertsFilter{active: true, silenced: true, inhibited: true}
	check := silence.FilterCheck() // the filters and the receiver together
	var err error
	if f.matchers, err = filterOf(q, check); err != nil {
		amError(w, http.StatusBadRequest, err.Error())
		return nil, f, false
	}
	for key, into := range map[string]*bool{"active": &f.active, "silenced": &f.silenced, "inhibited": &f.inhibited} {
		if v := q.Get(key); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				amError(w, http.StatusBadRequest, fmt.Sprintf("%s: %q is not a boolean", key, v))
				return nil, f, false
			}
			*into = b
		}
	}
	if v := q.Get("receiver"); v != "" {
		if err := check(amconfig.MatchRegexp, "receiver", v); err != nil {
			amError(w, http.StatusBadRequest, "receiver: "+err.Error())
			return nil, f, false
		}
		m, err := amconfig.NewMatcher(amconfig.MatchRegexp, "receiver", v)
		if err != nil {
			amError(w, http.StatusBadRequest, "failed to parse receiver param: "+err.Error())
			return nil, f, false
		}
		f.receiver = m
	}
	out := []gettableAlert{}
	if a.alerts != nil {
		select {
		case a.listing <- struct{}{}:
			defer func() { <-a.listing }()
		case <-r.Context().Done():
			return nil, f, false // the client left
		}
		all, err := a.alerts(r.Context(), time.Now())
		if err != nil {
			amError(w, http.StatusServiceUnavailable, err.Error())
			return nil, f, false
		}
		for _, al := range all {
			if f.keeps(al) {
				out = append(out, al)
			}
		}
	}
	return out, f, true
}

// gcSilences deletes long-expired silences every interval until ctx ends.
func gcSilences(ctx context.Context, store *silence.Store, every time.Duration, log zerolog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := store.GC(ctx); err != nil {
				log.Warn().Err(err).Msg("expired silences not collected")
			} else if n > 0 {
				log.Info().Int("silences", n).Msg("expired silences collected")
			}
		}
	}
}
