// Package notifier will deliver incidents to ticketing and chat tools:
// routing tree, silences, inhibition, grouping timers, signed webhooks with
// retries, idempotency keys and dead letters. Not built yet: the module
// exists so the workspace layout is the final one.
package notifier
