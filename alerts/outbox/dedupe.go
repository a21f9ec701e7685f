package outbox

import (
	"strconv"

	"github.com/fenceline/fenceline/internal/model"
)

// key identifies one state of one incident: the firing and the resolved alert
// of an incident share the id, and each is delivered once.
type key struct{ id, state string }

// keyOf is the key of a: its id and state, the state numbered for a
// repeat_interval re-send ("firing#2"), which is not a duplicate of the
// first send. The log keeps keys as [id, state] pairs: the form reads back.
func keyOf(a *model.Alert) key {
	if a.Repeat > 0 {
		return key{a.ID, a.State + "#" + strconv.Itoa(a.Repeat)}
	}
	return key{a.ID, a.State}
}

// window remembers the last max keys accepted, oldest first. A key is in the
// FIFO at most once because add is only called for keys it does not hold.
type window struct {
	max  int
	set  map[key]struct{}
	fifo []key
	head int
}

func newWindow(max int) *window {
	return &window{max: max, set: make(map[key]struct{})}
}

func (w *window) has(k key) bool {
	_, ok := w.set[k]
	return ok
}

func (w *window) len() int { return len(w.fifo) - w.head }

// add remembers k, forgetting the oldest keys beyond max.
func (w *window) add(k key) {
	if w.has(k) {
		return
	}
	w.set[k] = struct{}{}
	w.fifo = append(w.fifo, k)
	for w.len() > w.max {
		delete(w.set, w.fifo[w.head])
		w.fifo[w.head] = key{}
		w.head++
	}
	// Reclaim the evicted prefix once it is most of the slice, so the
	// backing array does not grow forever while the window stays full.
	if w.head > 1024 && w.head*2 > len(w.fifo) {
		n := copy(w.fifo, w.fifo[w.head:])
		clear(w.fifo[n:])
		w.fifo = w.fifo[:n]
		w.head = 0
	}
}

// each calls f for every key, oldest first.
func (w *window) each(f func(key)) {
	for _, k := range w.fifo[w.head:] {
		f(k)
	}
}
