package engine

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/model"
	"github.com/fenceline/fenceline/internal/testenv"
)

// A rule that panics on a reading (a bug: here its state is broken on
// purpose) costs that rule's alerts from the reading, not the process: the
// rules before it on the reading, and every rule on the other readings,
// still raise theirs, and the failure is counted and logged without the
// reading's identifiers.
func TestRuleFailureCostsOnlyThatRulesAlerts(t *testing.T) {
	var logs testenv.LogBuffer
	te := newEngine(t, loadRules(t))
	te.log = logs.Logger()
	te.rules["crowd-at-ruins"].count = nil // its first window's assignment panics

	assert.Equal(t, 0.0, gauge(t, te, "fenceline_alerts_rule_failures_total", ""), "the series before any rule exists from the start")
	var out []model.Alert
	require.NotPanics(t, func() {
		out = te.eval(te.phones("F-AOL-01", at(23, 0), ruinsIn, "428991234567890", "428991234567891"))
	})
	assert.Len(t, only(out, "night-phone-ruins"), 2, "the rule before the failing one")
	assert.Len(t, only(out, "foreign-sim-near-border"), 2, "the rule before the failing one")
	assert.Empty(t, only(out, "crowd-at-ruins"))
	assert.Equal(t, 2.0, testutil.ToFloat64(te.m.failures.WithLabelValues("crowd-at-ruins")))

	// The next message, of a phone the rule has not failed on yet, goes
	// through the rules as well.
	out = te.eval(te.phones("F-AOL-01", at(23, 1), ruinsIn, "428991234567892"))
	assert.Len(t, only(out, "foreign-sim-near-border"), 1)
	assert.Equal(t, 3.0, testutil.ToFloat64(te.m.failures.WithLabelValues("crowd-at-ruins")))

	line := logs.String()
	assert.Contains(t, line, "level=ERROR")
	assert.Contains(t, line, "a rule failed on a reading (a bug in fenceline)")
	assert.Contains(t, line, "rule=crowd-at-ruins")
	assert.Contains(t, line, "device=F-AOL-01")
	assert.Contains(t, line, "assignment to entry in nil map")
	assert.NotContains(t, line, "42899123456789", "no IMSI in the log")
	assert.Equal(t, 1, strings.Count(line, "a rule failed"), "once a minute per rule")
}
