package ingest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/event"
)

// The gateway refuses on /v1/events the kinds only aiops's stages make:
// an ingest token (handed to every Prometheus, Alertmanager and OTel
// collector) must not publish on events.incident.<service>, which the
// notifier consumes and the writer stores as the incident's latest state
// (it would resolve or open any incident in PagerDuty, Slack and the
// incidents table without the incidents API's token). The threat model
// leaves that power to NATS producers only.
func TestGatewayRefusesStageOnlyKinds(t *testing.T) {
	now := testNow.Format("2006-01-02T15:04:05Z")
	for kind, body := range map[event.Kind]string{
		event.KindIncident:        `{"incident_id":"01JDD0AAAAAAAAAAAAAAAAAAAA","status":"resolved","title":"x","opened_at":"` + now + `","resolved_at":"` + now + `"}`,
		event.KindWebhookDelivery: `{"incident_id":"01JDD0AAAAAAAAAAAAAAAAAAAA","receiver":"pagerduty","attempt":1,"idempotency_key":"k"}`,
		event.KindLogTemplate:     `{"template_id":"0123456789abcdef","template":"a <*>","status":"new"}`,
	} {
		t.Run(string(kind), func(t *testing.T) {
			pub := &fakePublisher{}
			line := fmt.Sprintf(`{"kind":%q,"service":"checkout","time":%q,"body":%s}`, kind, now, body)
			rec := request{path: PathEvents, contentType: "application/json", body: []byte(line)}.do(newTestHandler(t, pub, nil))
			if rec.Code != http.StatusBadRequest || len(pub.published()) != 0 || !strings.Contains(rec.Body.String(), "made by aiops's own stages") {
				t.Errorf("a producer's %s event: %d %s, %d published; want 400 naming the kind, none published", kind, rec.Code, rec.Body, len(pub.published()))
			}
		})
	}
}
