package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A value of the wrong shape is quoted in its problem, but a URL's user
// info (a password) is not.
func TestWrongShapeValueKeepsItsSecret(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"a webhook URL for the list", `webhooks: "https://u:pa ss@unit.local/a"`, `webhooks: must be a list (- item, or [item, …]), not the value "https://…@unit.local/a"`},
		{"a broker URL for a number", `mqtt: {qos: "tcp://u:s3cret@h:1"}`, `"tcp://…@h:1" is not a whole number`},
		{"a plain value is quoted whole", `mqtt: {topics: "border/+/+/+/+"}`, `not the value "border/+/+/+/+"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			require.NoError(t, os.WriteFile(p, []byte(tc.yaml+"\n"), 0o600))
			_, err := Load(p)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "pa ss")
			assert.NotContains(t, err.Error(), "s3cret")
		})
	}
}
