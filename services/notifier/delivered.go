package notifier

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A notification goes out to each integration of its receiver in turn,
// and one that failed holds it: its incident event comes again (tried
// again here, or at a stop given back to the stream, for the next
// notifier). The integrations that took it are not sent it again
// (Processor.delivered), but that memory is the process's: the next
// notifier, or this one restarted, sent it again to each, and a Slack
// incoming webhook, which has no idempotency key, showed a person the
// same message twice. So the idempotency keys that a receiver's
// integration answered 2xx, in a send that another of its integrations
// failed, are kept in the state bucket too (key sent.<idempotency key>),
// and read into Processor.delivered when a term begins. So are those of
// an incident event routed to other routes too (note.shared): it is held
// until every route's notification went out, and a stop while another
// receiver's lane was behind (slow, rate-limited, failing) gave it back
// for the next notifier to send again to this one. So, at once, are
// those of a Slack incoming webhook (integration.keptAtOnce), which has
// no idempotency key: one whose event is settled by its send is not sent
// again unless the event's ack is lost, and a kill -9 of `aiops run`
// loses the acks its embedded server had not yet written (up to 100 ms
// of them). Other sends do not write: their receivers drop a key they
// took, or, like Slack's before, get it again after such a kill. Like
// the Jira memos, a paused holder's writes are not fenced off: what it
// writes is true (the integration took it). A key expires with the
// bucket's entries (state.max_age).

// sentKeyPrefix begins the state bucket's keys of integrations that took
// a notification of which another integration failed.
const sentKeyPrefix = "sent."

// sentKeysTimeout bounds their reading at a term's start.
const sentKeysTimeout = 5 * time.Second

// keepSentIn keeps, in the state bucket kv, the idempotency keys taken by
// an integration of a receiver another integration of which failed.
func (p *Processor) keepSentIn(kv jetstream.KeyValue) { p.sentKV = kv }

// keepSent writes keys (idempotency keys, taken by the integrations named
// by paths) to the state bucket; one not written is logged: a notifier
// after this one would send it again. It runs on the receiver's lane, so
// it waits for the bucket as a notification waits for its state's write,
// no longer than stateWriteWait, and not at all while the bucket's last
// write failed (storeFailing, which a failure here sets too, until the
// saver's next pass succeeds): on a stalled bucket each Slack
// notification waited 5 s for its key.
func (p *Processor) keepSent(ctx context.Context, receiver string, keys, paths []string) {
	if p.sentKV == nil || len(keys) == 0 {
		return
	}
	if p.storeFailing.Load() {
		p.log.Warn().Str("receiver", receiver).Strs("idempotency_keys", keys).
			Msg("integrations' deliveries not kept: the state bucket's last write failed; a notifier after this one would send them again")
		return
	}
	// Its send may be cut (a stop's drain ending, a lost lease): that is
	// when it matters most.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateWriteWait)
	defer cancel()
	for i, key := range keys {
		if _, err := p.sentKV.Put(ctx, sentKeyPrefix+key, []byte(receiver+" "+paths[i])); err != nil {
			p.storeFailing.Store(true)
			p.log.Warn().Err(err).Str("receiver", receiver).Str("integration", paths[i]).Str("idempotency_key", key).
				Msg("integration's delivery not kept in the state bucket: a notifier after this one would send it again")
		}
	}
}

// restoreSentKeys reads the idempotency keys integrations took into
// delivered, at a term's start. A bucket that cannot be read is logged:
// delivery goes on, at the price of a second message where a sibling
// integration failed before.
func (p *Processor) restoreSentKeys(ctx context.Context) {
	if p.sentKV == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, sentKeysTimeout)
	defer cancel()
	w, err := p.sentKV.Watch(ctx, sentKeyPrefix+">", jetstream.IgnoreDeletes(), jetstream.MetaOnly())
	if err == nil {
		defer func() { _ = w.Stop() }()
		for err == nil {
			select {
			case e := <-w.Updates():
				if e == nil { // every key read
					return
				}
				p.delivered.Add(strings.TrimPrefix(e.Key(), sentKeyPrefix), struct{}{})
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
	}
	p.log.Warn().Err(err).Msg("integrations' deliveries not read from the state bucket: one whose sibling failed may be sent again")
}
