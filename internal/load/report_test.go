package load

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// An incomplete run says what to look at, not that readings were missing:
// it may be an alert that never came, with every reading stored.
func TestReportIncompleteSaysWhereToLook(t *testing.T) {
	var b strings.Builder
	(&Report{EndToEnd: EndToEnd{Complete: false}}).Print(&b)
	assert.Contains(t, b.String(), "INCOMPLETE: not everything expected arrived before it settled: see stored, dead-lettered and alerts")
	assert.NotContains(t, b.String(), "not every expected reading was stored")
	b.Reset()
	(&Report{EndToEnd: EndToEnd{Complete: true}}).Print(&b)
	assert.NotContains(t, b.String(), "INCOMPLETE")
}
