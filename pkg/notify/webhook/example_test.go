package webhook_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
)

// A receiver checks a request before it trusts the body, and keeps the
// webhook-ids it processed to drop redeliveries.
func ExampleVerify() {
	secret, err := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		panic(err)
	}
	handler := func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err := webhook.Verify([][]byte{secret}, r.Header, body, time.Now(), 0); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		// ... process body once per r.Header.Get(webhook.HeaderID)
	}
	_ = handler

	// The Standard Webhooks test vector, checked at its own time.
	h := http.Header{}
	h.Set(webhook.HeaderID, "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set(webhook.HeaderTimestamp, "1614265330")
	h.Set(webhook.HeaderSignature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	body := []byte(`{"test": 2432232314}`)
	fmt.Println(webhook.Verify([][]byte{secret}, h, body, time.Unix(1614265330, 0), 0))
	fmt.Println(webhook.Verify([][]byte{secret}, h, body, time.Unix(1614265330, 0).Add(10*time.Minute), 0))
	// Output:
	// <nil>
	// webhook: webhook-timestamp outside the tolerance: 600s old, tolerance 5m0s
}

// The notifier builds a body from an incident and delivers it; a
// permanent error goes to the dead letters, any other is retried later
// with the same idempotency key.
func ExampleClient_Deliver() {
	client, err := webhook.New(webhook.Config{}, webhook.WithRecorder(webhook.RecorderFunc(func(a webhook.Attempt) {
		// store a in webhook_deliveries
	})))
	if err != nil {
		panic(err)
	}
	in := webhook.SampleIncident()
	body, err := webhook.Generic(in)
	if err != nil {
		panic(err)
	}
	res, err := client.Deliver(context.Background(), webhook.Request{
		Receiver: "ops", URL: "https://hooks.example.com/aiops", Body: body,
		IdempotencyKey: webhook.IdempotencyKey(in), Secrets: [][]byte{[]byte("a secret of 24 bytes or more")},
	})
	switch {
	case err == nil:
		fmt.Println("delivered after", res.Attempts, "attempts")
	case errs.IsPermanent(err):
		fmt.Println("dead letter:", err)
	default:
		fmt.Println("deliver again later:", err)
	}
}

func ExampleCheckTemplate() {
	err := webhook.CheckTemplate("teams", `{
  "title": {{json .Title}},
  "env": {{json .Labels.env}}
}`, webhook.TemplateJSON)
	fmt.Println(err)
	// Output:
	// webhook: template "teams" line 3: at <.Labels.env>: map has no entry for key "env" (rendering a minimal incident)
}
