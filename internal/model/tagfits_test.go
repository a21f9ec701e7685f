package model

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTagFits(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    string
		fits bool
	}{
		{"empty", "", true},
		{"code", "blue", true},
		{"escaped characters", "dark blue,a=b", true},
		{"non-ASCII", "黄色", true},
		{"trailing backslash", `blue\`, false},
		{"backslash before a space", `\ x`, false},
		{"backslash before an equals sign after non-ASCII", `黄\=`, false},
		{"backslash inside", `K\33`, false},
		{"control character", "a\x01b", false},
		{"DEL", "a\x7fb", false},
		{"invalid UTF-8", "bad\xffutf8", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.fits, TagFits(tc.s))
		})
	}
}
