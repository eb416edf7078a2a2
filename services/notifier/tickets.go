package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
)

// jiraMemory keeps the webhook.JiraMemos of one Jira integration in the
// state bucket (key jira.<integration>.<incident id>). Jira's search index
// lags a few seconds behind a create, and a notifier restarted, or a
// standby taking the lease, within that lag would not find the issue just
// made: without the memo it would create a second one (after a create
// whose answer was lost, or for the acknowledgement of an incident whose
// issue was just made). A memo matters for seconds; it expires with the
// bucket's entries (state.max_age). A paused holder's writes are not
// fenced off, unlike the open incidents': what it writes is true (it made
// that request).
type jiraMemory struct {
	kv     jetstream.KeyValue
	prefix string
	// local keeps what could not be written, for this process.
	local webhook.JiraMemory
	log   zerolog.Logger
}

// jiraMemoryTimeout bounds one read or write of a memo.
const jiraMemoryTimeout = 5 * time.Second

func newJiraMemory(kv jetstream.KeyValue, integration string, log zerolog.Logger) *jiraMemory {
	return &jiraMemory{kv: kv, prefix: "jira." + bus.KeyToken(integration) + ".", local: webhook.NewLocalJiraMemory(),
		log: log.With().Str("integration", integration).Logger()}
}

func (m *jiraMemory) key(id string) string { return m.prefix + bus.KeyToken(id) }

// Recall reads the incident's memo. One that cannot be read is what this
// process knows, logged: the memo spares a second issue only within the
// seconds Jira's search lags behind a create another notifier made, while
// failing would hold back every Jira notification for as long as the
// bucket is away (its only replica's server down, say), and dead-letter
// them at max_deliver.
func (m *jiraMemory) Recall(ctx context.Context, id string) (webhook.JiraMemo, error) {
	ctx, cancel := context.WithTimeout(ctx, jiraMemoryTimeout)
	defer cancel()
	e, err := m.kv.Get(ctx, m.key(id))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return m.local.Recall(ctx, id)
	case err != nil:
		m.log.Warn().Err(err).Str("incident_id", id).Msg("jira memo not read: going by this process's and Jira's search (an issue another notifier made seconds ago may be made again)")
		return m.local.Recall(ctx, id)
	}
	var memo webhook.JiraMemo
	if err := json.Unmarshal(e.Value(), &memo); err != nil {
		// not a memo of ours: as if none, which the search then decides
		m.log.Warn().Err(err).Str("key", e.Key()).Msg("jira memo unreadable: ignored")
		return m.local.Recall(ctx, id)
	}
	return memo, nil
}

// Keep writes the incident's memo (deletes it when empty); one that
// cannot be written is kept in this process and logged.
func (m *jiraMemory) Keep(ctx context.Context, id string, memo webhook.JiraMemo) {
	m.local.Keep(ctx, id, memo)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jiraMemoryTimeout)
	defer cancel()
	var err error
	if memo == (webhook.JiraMemo{}) {
		err = m.kv.Delete(ctx, m.key(id))
	} else {
		var data []byte
		if data, err = json.Marshal(memo); err == nil {
			_, err = m.kv.Put(ctx, m.key(id), data)
		}
	}
	if err != nil {
		m.log.Warn().Err(err).Str("incident_id", id).Msg("jira memo not saved: a restart within seconds could make a second issue")
	}
}

// keepJiraMemos gives every Jira integration a memory in the bucket kv.
func (p *Processor) keepJiraMemos(kv jetstream.KeyValue) {
	for path, j := range p.jiras {
		j.Memory = newJiraMemory(kv, path, p.log)
	}
}
