// Package correlator will group alerts, anomalies, changes and templated
// error logs into incidents (fingerprint dedup, grouping by labels,
// topology, time and text, lifecycle, flapping, enrichment) and publish
// their lifecycle on the INCIDENTS stream. Not built yet: the module exists
// so the workspace layout is the final one.
package correlator
