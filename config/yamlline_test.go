package config

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.yaml.in/yaml/v3"
)

// A syntax error names the line it is on, whichever part of yaml.v3 (its
// scanner or its parser) found it.
func TestYAMLProblemLine(t *testing.T) {
	tests := []struct {
		name string
		data string
		line int
	}{
		{"an unclosed { on the fourth line", "a: 1\nrules:\n  - {id: x, kind: y}\n  - {id: z, kind: w\n  - {id: q}\n", 4},
		{"an unclosed { at the end of the file", "a: 1\nrules:\n  - {id: x, kind: y}\n  - {id: z, kind: w\n", 4},
		{"an unclosed [ in a flow mapping", "a: 1\nrules:\n  - {id: x, kind: [a, b}\n  - {id: q}\n", 3},
		{"an unclosed [", "a: 1\n\nb: [x,\n  y\nc: 1\n", 3},
		{"a ] alone", "a: 1\nb: {c: 1, d: 2}\ne: ]\n", 3},
		{"a list item among keys", "a: 1\nb: 2\n- x\n", 3},
		{"an unclosed { on the only line", "{a: 1\n", 1},
		{"a list item among a nested mapping's keys", "a: 1\nmqtt:\n  broker: x\n  # a comment\n\n  client_id: y\n  - border/+/+/+/+\nstorage: {}\n", 7},
		{"a list item among keys nested deeper", "watchlists:\n  foreign-sim:\n    kind: imsi\n    entries: [\"428*\"]\n    - \"460*\"\n", 5},
		{"a key indented by one space too few", "a: 1\nb:\n  c: 1\n d: 2\n", 4},
		{"a key between two blocks' indentations", "mqtt:\n  broker: x\n  tls:\n    ca_file: x\n   cert_file: y\nstorage: {}\n", 5},
		{"a list item one space short, deep in a rule", "rules:\n  - id: r\n    schedule:\n      tz: UTC\n      windows:\n        - {from: \"20:00\", to: \"06:00\"}\n       - {from: \"07:00\", to: \"08:00\"}\n", 7},
		{"a key one space short in a list item", "devices:\n  - id: CP-1\n    lat: 1\n   lon: 2\n", 4},
		{"a key one space short after a list item's first", "rules:\n  - id: r\n    schedule:\n      windows:\n        - from: \"20:00\"\n         to: \"06:00\"\n        - from: \"10:00\"\n          to: \"11:00\"\n", 6},
		{"a key among a nested list's items", "a:\n  - x\n  - y\n  z: 1\n", 4},
		{"a character no token starts with (scanner)", "a: 1\nb: @x\n", 2},
		{"a mapping value where none may be (scanner)", "a: 1\nb: 2\n  c: 3\n", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var v any
			err := yaml.Unmarshal([]byte(tc.data), &v)
			if !assert.Error(t, err) {
				return
			}
			p := yamlProblem("rules.yaml", []byte(tc.data), errors.New(err.Error()))
			assert.Equal(t, tc.line, p.Line, p.Error())
		})
	}
}
