package decode

import (
	"strings"

	"github.com/fenceline/fenceline/internal/model"
)

const topicPrefix = "border/"

// ParseTopic splits a device topic border/{site}/{kind}/{device}/{stream}.
// site is 1-32 of [a-z0-9-], kind is fence|checkpoint|patrol, device is 1-64
// of [A-Za-z0-9_-], stream one of the contract's streams; anything else
// (including extra levels) is not ok. The returned strings are substrings of
// topic.
func ParseTopic(topic string) (site string, kind model.Kind, device string, stream model.Stream, ok bool) {
	rest, found := strings.CutPrefix(topic, topicPrefix)
	if !found {
		return "", "", "", model.StreamUnknown, false
	}
	var levels [4]string
	for i := range 3 {
		j := strings.IndexByte(rest, '/')
		if j < 0 {
			return "", "", "", model.StreamUnknown, false
		}
		levels[i], rest = rest[:j], rest[j+1:]
	}
	levels[3] = rest // a further '/' fails the stream check below

	if !validSite(levels[0]) || !validDevice(levels[2]) {
		return "", "", "", model.StreamUnknown, false
	}
	switch levels[1] {
	case "fence":
		kind = model.KindFence
	case "checkpoint":
		kind = model.KindCheckpoint
	case "patrol":
		kind = model.KindPatrol
	default:
		return "", "", "", model.StreamUnknown, false
	}
	stream = model.ParseStream(levels[3])
	if stream == model.StreamUnknown {
		return "", "", "", model.StreamUnknown, false
	}
	return levels[0], kind, levels[2], stream, true
}

func validSite(s string) bool {
	if len(s) < 1 || len(s) > 32 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func validDevice(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
