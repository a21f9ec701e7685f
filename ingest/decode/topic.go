package decode

import (
	"strconv"
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

// topicProblem says which level of a topic ParseTopic refused is wrong: a
// unit's configuration is mended one level at a time. Values are echoed
// bounded (echoTopic).
func topicProblem(topic string) string {
	rest, ok := strings.CutPrefix(topic, topicPrefix)
	if !ok {
		return "it does not start with " + topicPrefix
	}
	levels := strings.Split(rest, "/")
	if len(levels) != 4 {
		return "it has " + strconv.Itoa(len(levels)) + " levels after " + topicPrefix + ", want 4: site, kind, device, stream"
	}
	switch {
	case !validSite(levels[0]):
		return "site " + echoTopic(levels[0]) + " is not 1-32 of a-z, 0-9 and -"
	case levels[1] != "fence" && levels[1] != "checkpoint" && levels[1] != "patrol":
		return "kind " + echoTopic(levels[1]) + " is not fence, checkpoint or patrol"
	case !validDevice(levels[2]):
		return "device " + echoTopic(levels[2]) + " (" + strconv.Itoa(len(levels[2])) + " bytes) is not 1-64 of A-Z, a-z, 0-9, - and _"
	default:
		return "stream " + echoTopic(levels[3]) + " is not detections, passes, position or status"
	}
}
