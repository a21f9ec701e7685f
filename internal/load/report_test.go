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

// A counts check cannot tell whole messages lost: the report says so in
// words, not with a bare "?" that reads as an error.
func TestReportLostWholeMessagesByMethod(t *testing.T) {
	var b strings.Builder
	(&Report{Accounting: Accounting{Method: "counts", LostMessages: -1, LostReadings: 3}}).Print(&b)
	assert.Contains(t, b.String(), "3 readings (whole messages not told by a counts check)")
	assert.NotContains(t, b.String(), "? whole")
	b.Reset()
	(&Report{Accounting: Accounting{Method: "points", LostMessages: 2, LostReadings: 40}}).Print(&b)
	assert.Contains(t, b.String(), "40 readings, 2 whole messages")
}
