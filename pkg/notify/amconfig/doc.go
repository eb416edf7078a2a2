// Package amconfig reads a team's Alertmanager configuration file
// (alertmanager.yml) as it is, and routes, inhibits and mutes exactly as
// Alertmanager does, so that the notifier can take Alertmanager's place.
//
// The reference is Alertmanager 0.25, Debian's prometheus-alertmanager
// package, which the tests run: routing is compared with
// `amtool config routes test` on hundreds of alerts, what is a valid file
// with `amtool check-config`, and inhibition and time intervals with an
// Alertmanager server on 127.0.0.1. Without the package the tests skip,
// except under CI=true, where they fail.
//
// # Reading
//
// Load and Parse accept what Alertmanager accepts, with these differences:
//
//   - Receivers: webhook_configs, pagerduty_configs (Events API v2),
//     slack_configs and jira_configs (Alertmanager 0.28's shape) with
//     Alertmanager's keys, and aiops's own aiops_webhook_configs (signed
//     with Standard Webhooks, secret_file naming the secret),
//     servicenow_configs and aiops_template_configs. Their text keys
//     (description, title, summary, ...) are Go templates of the aiops
//     incident, which the notifier checks at start. Any other receiver
//     type that has entries is an error naming it, e.g. "receivers[2]
//     (team-x): email_configs is not supported by aiops (supported: ...)";
//     so is an Alertmanager key of a supported type that aiops would not
//     apply (slack_configs' color or actions, pagerduty_configs'
//     service_key, jira_configs' fields).
//   - Keys of later Alertmanager versions are accepted: url_file and
//     timeout in webhook_configs, and the newer global keys (which are kept,
//     like every global key but resolve_timeout and http_config, and not
//     used).
//   - Label names that are not classic Prometheus names (OpenTelemetry's
//     otel.scope.name, k8s.pod.name) are read as Alertmanager 0.27 and later
//     read them in their default ("fallback") mode: a matchers item that
//     0.25's parser refuses is read by the UTF-8 matchers grammar, where a
//     name is double-quoted (`"otel.scope.name"="checkout"`, Go string
//     escapes) or unquoted without a reserved character
//     (`k8s.pod.name=~"web-.*"`); group_by and equal take any non-empty
//     name; match and match_re keys stay classic, as in Alertmanager. So a
//     file 0.25 reads is read exactly as 0.25 reads it. A matcher of an
//     empty name is an error (Alertmanager takes `""="x"`).
//   - Every problem is reported, not only the first, each with its key path
//     (route.routes[1].matchers[0], receivers[2] (team-x).webhook_configs[0].url)
//     and line; unknown keys are errors naming their path. Errors wrap
//     ErrInvalidConfig and never contain values that may be secrets.
//
// YAML is read as yaml.v2 reads it for Alertmanager: null is the zero
// value, YAML 1.1 booleans (yes, off) are booleans, anchors and merge keys
// work, and where a merge key brings a key again, matchers accumulate,
// match maps join (a label twice is an error) and other keys take the last
// value.
//
// # Routing, inhibition, time intervals
//
// Route.Match is Alertmanager's dispatcher: depth first, continue, a route
// whose children do not match is the match. Each Route carries its
// effective receiver, group_by and timers, inherited as Alertmanager does
// (including 0.25's rule that group_by: [] inherits). Config.Inhibited is
// the inhibitor's decision for one alert given the alerts firing now;
// Config.Muted applies a route's mute_time_intervals and
// active_time_intervals at a time. FormatRoutesTest prints what
// `amtool config routes test [--tree]` prints.
//
// # Not modelled
//
// Templates are kept as globs and not read (Alertmanager refuses a file
// whose templates do not parse; aiops does not look; the notifier warns
// that they are not read). The notification
// pipeline itself (grouping, timers, silences, clustering) is the
// notifier's. group_by: [] inherits as in 0.25 (later versions read it as
// "no grouping"). Alertmanager's UTF-8 strict and classic modes are not
// modelled: the matchers are read as in its default mode (above). The
// tests compare with Debian's amtool 0.25, which predates UTF-8 label
// names; those cases are checked to be refused by it. Keys that only later
// versions have in http_config (no_proxy, http_headers, ...), in inhibit
// rules (name) and at the top level (tracing) are unknown keys.
package amconfig
