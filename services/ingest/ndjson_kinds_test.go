package ingest

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/aiops-dev/aiops/pkg/event"
)

// The kinds only aiops's stages make are refused as NDJSON too (the
// demo's own content type).
func TestNDJSONStageOnlyKindsRefused(t *testing.T) {
	now := testNow.Format("2006-01-02T15:04:05Z")
	body := `{"incident_id":"01JDD0AAAAAAAAAAAAAAAAAAAA","status":"resolved","title":"x","opened_at":"` + now + `","resolved_at":"` + now + `"}`
	pub := &fakePublisher{}
	line := fmt.Sprintf(`{"kind":%q,"service":"checkout","time":%q,"body":%s}`, event.KindIncident, now, body)
	rec := request{path: PathEvents, contentType: "application/x-ndjson", body: []byte(line + "\n")}.do(newTestHandler(t, pub, nil))
	if rec.Code != http.StatusBadRequest || len(pub.published()) != 0 {
		t.Fatalf("an incident event as NDJSON: %d %s, %d published; want 400, none published", rec.Code, rec.Body, len(pub.published()))
	}
}
