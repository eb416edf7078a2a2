// Package webhook gets incident notifications to their receivers and proves
// they got there: at least once, signed, retried and idempotent.
//
// # Signing
//
// Every request carries the three headers of Standard Webhooks
// (https://www.standardwebhooks.com, spec/standard-webhooks.md in
// github.com/standard-webhooks/standard-webhooks):
//
//	webhook-id:        the idempotency key, the same on every retry
//	webhook-timestamp: the attempt's time, unix seconds
//	webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">,
//	                   one per secret, space-separated (secret rotation)
//
// Secrets are written whsec_<base64 of 24 to 64 random bytes> (ParseSecret,
// ReadSecretFile). Receivers check a request with Verify.
//
// # Delivery
//
// Client.Deliver POSTs one body to one receiver and retries what may succeed
// later: 5xx, 408, 429, timeouts and connection errors, with exponential
// backoff and full jitter, or after the receiver's Retry-After. Other 4xx
// and unfollowed redirects are permanent (errs.Permanent) and not retried.
// Each receiver has a circuit breaker and a token-bucket rate limit, shared
// by all deliveries to it. Every HTTP attempt is reported to a Recorder (the
// notifier stores them in ClickHouse webhook_deliveries). Deliver returns
// nil only after a 2xx; an error that is not permanent means "not delivered
// yet": the caller keeps the notification and delivers it again later with
// the same idempotency key, which is what makes delivery at-least-once and
// lets receivers drop the duplicates (not before Client.BreakerOpenUntil:
// an open breaker refuses without a request).
//
// Errors and attempts never contain the receiver's URL, which often embeds
// a token (Slack and many chat webhooks), nor any secret.
//
// # Payloads
//
// Incident is what the notifier knows about one incident transition; the
// builders turn it into a body: Generic (aiops.incident.v1), Alertmanager
// (Prometheus Alertmanager webhook v4), Slack (incoming webhook), PagerDuty
// (Events API v2) and Template (Go text/template for anything else).
// IdempotencyKey derives the webhook-id of an incident transition;
// ParseGeneric reads a Generic payload back into an Incident.
//
// # Ticketing
//
// Jira and ServiceNow keep one ticket per incident over several requests
// (search, create, comment or update, transition), each sent through a
// Deliverer (Client.Deliver: the same retries, breaker, rate limit and
// records) under the notification's idempotency key plus the step's name.
// The ticket is found each time by what names the incident (a Jira label,
// a ServiceNow correlation_id), so a restart continues the same ticket; a
// create is an Unsafe request, not retried once it may have been applied
// (no answer, or a gateway's 502 or 504, or a 408: see Request.Unsafe),
// so a lost answer never makes a second ticket. A Jira comment or a
// ServiceNow work note ends in the line "aiops-notification: <key>" and is
// skipped when one of the ticket's newest notes carries it, so a
// redelivered notification writes no second note.
package webhook
