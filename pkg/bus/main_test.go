package bus

import (
	"testing"

	"github.com/aiops-dev/aiops/pkg/testenv"
)

// A NATS container shared by the tests is stopped as soon as they end.
func TestMain(m *testing.M) { testenv.Main(m) }
