// Package bus is the JetStream backbone every aiops service talks through:
// connecting (cluster URLs, credentials, TLS), provisioning streams and durable
// consumers idempotently, publishing asynchronously with message ids so the
// stream's duplicate window drops retries, and running pull consumers whose
// handlers only return an error.
//
// The handler's result decides the message's fate, so processing code never
// sees the transport (the idea of Watermill's router): nil acks, an error marked
// with errs.Permanent goes to the dead-letter subject and is terminated, any
// other error is redelivered later with backoff until MaxDeliver, after which it
// is dead-lettered too rather than dropped silently.
package bus
