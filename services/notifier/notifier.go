// Package notifier delivers incidents to the tools people work in: it
// consumes the correlator's incident events (events.incident.>), routes
// each with an Alertmanager configuration file as it is (route tree,
// inhibit rules, time intervals), and posts it to the matched receivers'
// webhooks: Alertmanager's webhook v4 payload for webhook_configs (existing
// receivers keep working), the signed aiops payload for
// aiops_webhook_configs (Standard Webhooks signatures). Delivery is
// at-least-once with an idempotency key per incident transition and
// receiver, retried with backoff, and never repeated to a receiver that
// answered 2xx when the incident event comes again.
package notifier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/notify/amconfig"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
	"github.com/aiops-dev/aiops/pkg/stage"
)

// Processor routes and delivers incident events; a stage.Processor.
type Processor struct {
	cfg    Config
	routes *amconfig.Config // nil: no routes configured
	client *webhook.Client
	log    zerolog.Logger

	// delivered remembers (transition, receiver, webhook) deliveries that
	// got a 2xx, so that a redelivered incident event does not notify
	// them again.
	delivered *lru.Cache[string, struct{}]

	mu sync.Mutex
	// firing holds the labels of open incidents, the sources of
	// inhibition.
	firing map[string]map[string]string

	// records publishes every attempt as a webhook_delivery event (the
	// writer's webhook_deliveries table); nil: attempts are only logged.
	records stage.Publisher
	// current is the incident being delivered (Process is serial).
	current struct {
		id, service, eventID string
	}
}

// WithRecords publishes every delivery attempt as a webhook_delivery event
// through pub (New gives it the bus).
func (p *Processor) WithRecords(pub stage.Publisher) *Processor {
	p.records = pub
	return p
}

// NewProcessor builds the processor without a network.
func NewProcessor(cfg Config, log zerolog.Logger, opts ...webhook.Option) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	p := &Processor{cfg: cfg, log: log, firing: map[string]map[string]string{}}
	if cfg.Routes != "" {
		var err error
		if p.routes, err = amconfig.Load(cfg.Routes); err != nil {
			return nil, err
		}
	} else {
		log.Warn().Msg("notifier.routes is not set: incidents are delivered to nobody")
	}
	opts = append([]webhook.Option{webhook.WithRecorder(webhook.RecorderFunc(p.record))}, opts...)
	var err error
	if p.client, err = webhook.New(cfg.Delivery, opts...); err != nil {
		return nil, err
	}
	p.delivered, _ = lru.New[string, struct{}](100_000)
	return p, nil
}

// record logs every delivery attempt and publishes it as a
// webhook_delivery event, linked to the incident event, its id derived
// from the attempt so a repeat is stored once. It does not wait for the
// ack: the record of an attempt is worth less than holding the delivery.
func (p *Processor) record(a webhook.Attempt) {
	ev := p.log.Info()
	if a.Error != "" {
		ev = p.log.Warn().Str("error", a.Error)
	}
	ev.Str("receiver", a.Receiver).Str("idempotency_key", a.IdempotencyKey).Int("attempt", a.Number).
		Int("status", a.StatusCode).Dur("duration", a.Duration).Bool("retrying", a.Retrying).Msg("webhook attempt")
	if p.records == nil {
		return
	}
	e, err := event.New(event.KindWebhookDelivery, p.current.service, a.Start, event.WebhookDeliveryBody{
		IncidentID: p.current.id, Receiver: a.Receiver, Attempt: a.Number, StatusCode: a.StatusCode, Error: a.Error,
		DurationMS: a.Duration.Milliseconds(), IdempotencyKey: a.IdempotencyKey, Retrying: a.Retrying,
	})
	if err != nil {
		p.log.Error().Err(err).Msg("delivery record not built")
		return
	}
	e.ID = event.DerivedID(a.Start, "webhook_delivery", a.IdempotencyKey, fmt.Sprint(a.Number))
	e.Source = "notifier"
	e.Links = []string{p.current.eventID}
	data, err := e.MarshalJSON()
	if err == nil {
		_, err = p.records.Publish(context.Background(), bus.Message{Subject: e.Subject(), ID: e.ID, Data: data})
	}
	if err != nil {
		p.log.Warn().Err(err).Str("receiver", a.Receiver).Msg("delivery record not published")
	}
}

// Process delivers one incident event to the receivers its route tree
// matches. A receiver that refuses it for good (4xx) is logged and skipped;
// one that could not be reached in the retry budget fails the event, which
// comes again later: receivers that already answered 2xx are not sent it
// again.
func (p *Processor) Process(ctx context.Context, in *event.Envelope, _ stage.Emitter) error {
	if in.Kind != event.KindIncident {
		return nil
	}
	var st correlate.State
	if err := in.DecodeBody(&st); err != nil {
		return errs.Permanent(fmt.Errorf("notifier: incident event %s: %w", in.ID, err))
	}
	inc := incidentOf(in, &st)
	if err := inc.Validate(); err != nil {
		return errs.Permanent(fmt.Errorf("notifier: incident event %s: %w", in.ID, err))
	}
	labels := labelsOf(&st, inc)
	firing := p.track(st.IncidentID, labels, inc.Status)
	p.current.id, p.current.service, p.current.eventID = st.IncidentID, st.Service, in.ID
	if p.routes == nil {
		return nil
	}
	if p.routes.Inhibited(labels, firing) {
		p.log.Info().Str("incident_id", st.IncidentID).Msg("incident inhibited: not delivered")
		return nil
	}
	var failed []error
	for _, route := range p.routes.Route.Match(labels) {
		if muted, err := p.routes.Muted(route, inc.Time()); err != nil || muted {
			if err != nil {
				p.log.Warn().Err(err).Str("route", route.Path).Msg("time interval not evaluated: delivering")
			} else {
				continue
			}
		}
		recv, ok := p.routes.Receiver(route.Receiver)
		if !ok {
			continue // Load checked every route's receiver
		}
		failed = append(failed, p.deliverTo(ctx, recv, inc)...)
	}
	return errors.Join(failed...)
}

// deliverTo sends inc to every webhook of recv; it returns the transient
// failures.
func (p *Processor) deliverTo(ctx context.Context, recv *amconfig.Receiver, inc webhook.Incident) []error {
	var failed []error
	send := func(i int, wc *amconfig.WebhookConfig, body func() ([]byte, error), secretFile string) {
		// The key names this incident event (its id is unique per
		// transition) at this receiver's webhook: the same on every retry
		// and redelivery.
		key := event.DerivedID(inc.Time(), p.current.eventID, recv.Name, fmt.Sprint(i))
		if _, done := p.delivered.Get(key); done {
			return
		}
		url := wc.URL
		if wc.URLFile != "" {
			data, err := config.ReadSecretFile(wc.URLFile)
			if err != nil {
				// A file that is not there yet is an operator's fix away:
				// the event comes again.
				failed = append(failed, fmt.Errorf("receiver %s: url_file: %w", recv.Name, err))
				return
			}
			url = strings.TrimSpace(data)
		}
		b, err := body()
		if err != nil {
			p.log.Error().Err(err).Str("receiver", recv.Name).Msg("payload not built: not delivered")
			return
		}
		req := webhook.Request{Receiver: recv.Name, URL: url, Body: b, IdempotencyKey: key}
		if secretFile != "" {
			secret, err := webhook.ReadSecretFile(secretFile)
			if err != nil {
				failed = append(failed, fmt.Errorf("receiver %s: secret_file: %w", recv.Name, err))
				return
			}
			req.Secrets = [][]byte{secret}
		}
		if req.Header, err = authHeader(wc.HTTPConfig); err != nil {
			failed = append(failed, fmt.Errorf("receiver %s: http_config: %w", recv.Name, err))
			return
		}
		if _, err := p.client.Deliver(ctx, req); err != nil {
			if errs.IsPermanent(err) {
				p.log.Error().Err(err).Str("receiver", recv.Name).Str("incident_id", inc.ID).Msg("receiver refused the incident: not retried")
				return
			}
			failed = append(failed, fmt.Errorf("receiver %s: %w", recv.Name, err))
			return
		}
		p.delivered.Add(key, struct{}{})
	}
	resolved := inc.Status == webhook.StatusResolved
	for i, wc := range recv.WebhookConfigs {
		if resolved && !wc.SendResolved {
			continue
		}
		send(i, wc, func() ([]byte, error) {
			return webhook.Alertmanager(inc, webhook.AlertmanagerOptions{Receiver: recv.Name, ExternalURL: p.cfg.ExternalURL})
		}, "")
	}
	for i, wc := range recv.AiopsWebhookConfigs {
		if resolved && !wc.SendResolved {
			continue
		}
		send(len(recv.WebhookConfigs)+i, &wc.WebhookConfig, func() ([]byte, error) { return webhook.Generic(inc) }, wc.SecretFile)
	}
	return failed
}

// authHeader is the Authorization header http_config asks for: an
// authorization (Bearer by default) or basic_auth, credentials inline or
// from a file. TLS, proxy and OAuth2 settings are not applied yet.
func authHeader(hc *amconfig.HTTPConfig) (http.Header, error) {
	if hc == nil {
		return nil, nil
	}
	secret := func(inline, file string) (string, error) {
		if file == "" {
			return inline, nil
		}
		return config.ReadSecretFile(file)
	}
	switch {
	case hc.Authorization != nil:
		cred, err := secret(hc.Authorization.Credentials, hc.Authorization.CredentialsFile)
		if err != nil {
			return nil, err
		}
		typ := hc.Authorization.Type
		if typ == "" {
			typ = "Bearer"
		}
		return http.Header{"Authorization": {typ + " " + cred}}, nil
	case hc.BasicAuth != nil:
		pass, err := secret(hc.BasicAuth.Password, hc.BasicAuth.PasswordFile)
		if err != nil {
			return nil, err
		}
		req := http.Request{Header: http.Header{}}
		req.SetBasicAuth(hc.BasicAuth.Username, pass)
		return req.Header, nil
	}
	return nil, nil
}

// track keeps the labels of open incidents for inhibition and returns
// those of the others.
func (p *Processor) track(id string, labels map[string]string, status webhook.Status) []map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if status == webhook.StatusResolved {
		delete(p.firing, id)
	} else {
		p.firing[id] = labels
	}
	out := make([]map[string]string, 0, len(p.firing))
	for other, l := range p.firing {
		if other != id {
			out = append(out, l)
		}
	}
	return out
}

// labelsOf are the labels an incident is routed by, as Alertmanager routes
// an alert: the labels of its first member on its root-cause service
// (alertname, severity, cluster...), then the incident's own: service,
// team, severity, incident_id, status.
func labelsOf(st *correlate.State, inc webhook.Incident) map[string]string {
	l := map[string]string{}
	for _, m := range inc.Members {
		if m.Service == st.Service {
			for k, v := range m.Labels {
				l[k] = v
			}
			if l["alertname"] == "" {
				l["alertname"] = m.Name
			}
			break
		}
	}
	l["service"] = st.Service
	if st.Team != "" {
		l["team"] = st.Team
	}
	if st.Severity != "" {
		l["severity"] = string(st.Severity)
	}
	l["incident_id"] = st.IncidentID
	l["status"] = st.State
	return l
}

// incidentOf maps an incident event to the payloads' incident.
func incidentOf(e *event.Envelope, st *correlate.State) webhook.Incident {
	inc := webhook.Incident{
		ID: st.IncidentID, Status: webhook.Status(st.State), Transition: webhook.Transition(st.Status), At: e.Time,
		Title: st.Title, Service: st.Service, Team: st.Team, Owner: st.Owner, Assignee: st.Assignee,
		Severity: st.Severity, Runbook: st.Runbook, OpenedAt: st.OpenedAt, AcknowledgedAt: st.AcknowledgedAt,
		ResolvedAt: st.ResolvedAt, Services: st.Services, MemberCount: st.MemberCount, Labels: e.Labels,
	}
	for _, rc := range st.RootCauses {
		inc.RootCauses = append(inc.RootCauses, webhook.RootCause{Service: rc.Service, Score: rc.Score, Reasons: rc.Reasons})
	}
	for _, m := range st.Members {
		labels := m.Labels
		if len(labels) == 0 {
			labels = map[string]string{"alertname": m.Name, "service": m.Service}
		}
		inc.Members = append(inc.Members, webhook.Member{Fingerprint: m.Fingerprint, Kind: string(m.Kind), Service: m.Service,
			Name: m.Name, Summary: m.Summary, Severity: m.Severity, Firing: m.Firing, FirstSeen: m.FirstSeen, LastSeen: m.LastSeen,
			Labels: labels})
	}
	for _, c := range st.Changes {
		inc.Changes = append(inc.Changes, webhook.Change{ID: c.EventID, Service: c.Service, Type: c.Type, Version: c.Version,
			Author: c.Author, Commit: c.Commit, URL: c.URL, Description: c.Description, Time: c.Time})
	}
	return inc
}

// Service is the notifier on JetStream.
type Service struct {
	*stage.Stage
	proc *Processor
}

// New builds the notifier on js.
func New(ctx context.Context, js jetstream.JetStream, cfg Config, log zerolog.Logger, opts ...stage.OpenOption) (*Service, error) {
	proc, err := NewProcessor(cfg, log)
	if err != nil {
		return nil, err
	}
	records, err := bus.NewPublisher(js)
	if err != nil {
		return nil, err
	}
	proc.WithRecords(records)
	st, err := stage.Open(ctx, js, proc, stage.Config{Name: "notifier", Workers: 1, CheckpointTimeout: 30 * time.Second}, proc.cfg.Consumer, log, opts...)
	if err != nil {
		return nil, err
	}
	return &Service{Stage: st, proc: proc}, nil
}
