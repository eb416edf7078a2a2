package event

import _ "embed"

// SchemaJSON is the JSON Schema (draft 2020-12) of the envelope, for
// producers that publish straight to NATS and want to check their output.
// A test keeps it in agreement with Validate.
//
//go:embed schema/envelope.v1.json
var SchemaJSON []byte
