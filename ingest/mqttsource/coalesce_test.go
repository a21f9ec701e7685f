package mqttsource

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// gatedConn is the network side of a bufferedConn under test: each Write
// records its bytes, then waits for the test to let it return (when gated).
type gatedConn struct {
	net.Conn // nil: only Write, Close and SetWriteDeadline are used
	gate     chan struct{}
	fail     error

	mu       sync.Mutex
	writes   [][]byte
	closed   bool
	deadline time.Time
}

func newGatedConn(gated bool) *gatedConn {
	g := &gatedConn{}
	if gated {
		g.gate = make(chan struct{})
	}
	return g
}

func (g *gatedConn) Write(p []byte) (int, error) {
	g.mu.Lock()
	g.writes = append(g.writes, bytes.Clone(p))
	g.mu.Unlock()
	if g.gate != nil {
		<-g.gate
	}
	if g.fail != nil {
		return 0, g.fail
	}
	return len(p), nil
}

func (g *gatedConn) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	return nil
}

func (g *gatedConn) SetWriteDeadline(t time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deadline = t
	return nil
}

func (g *gatedConn) state() (writes [][]byte, closed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.writes, g.closed
}

// Packets written while the connection is busy with an earlier write leave
// together, in order, in the next one.
func TestBufferedConnCoalescesWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedConn(true)
		c := newBufferedConn(g)
		write := func(s string) {
			n, err := c.Write([]byte(s))
			require.NoError(t, err)
			require.Equal(t, len(s), n)
		}
		write("ack-1;")
		synctest.Wait() // the flusher is inside the first write
		for i := 2; i <= 200; i++ {
			write("ack-" + strconv.Itoa(i) + ";")
		}
		g.gate <- struct{}{} // first write returns; the second takes the rest
		synctest.Wait()
		writes, _ := g.state()
		require.Len(t, writes, 2)
		require.Equal(t, "ack-1;", string(writes[0]))
		var want bytes.Buffer
		for i := 2; i <= 200; i++ {
			want.WriteString("ack-" + strconv.Itoa(i) + ";")
		}
		require.Equal(t, want.String(), string(writes[1]))
		close(g.gate)
		require.NoError(t, c.Close())
	})
}

// Close writes what is pending before it closes (paho writes DISCONNECT,
// then closes), and later writes fail as on a closed connection.
func TestBufferedConnCloseFlushes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedConn(true)
		c := newBufferedConn(g)
		_, err := c.Write([]byte("puback"))
		require.NoError(t, err)
		synctest.Wait()
		_, err = c.Write([]byte("disconnect"))
		require.NoError(t, err)
		closed := make(chan error, 1)
		go func() { closed <- c.Close() }()
		synctest.Wait()
		_, isClosed := g.state()
		require.False(t, isClosed, "Close waits for the pending bytes")
		close(g.gate)
		require.NoError(t, <-closed)
		writes, isClosed := g.state()
		require.True(t, isClosed)
		require.Equal(t, []string{"puback", "disconnect"}, strs(writes))
		_, err = c.Write([]byte("late"))
		require.ErrorIs(t, err, net.ErrClosed)
		require.Contains(t, err.Error(), "use of closed network connection", "paho recognises the closed connection by this text")
	})
}

// A connection that takes nothing is closed after closeFlushTimeout: Close
// sets a write deadline and does not wait for ever.
func TestBufferedConnCloseGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedConn(true)
		c := newBufferedConn(g)
		_, err := c.Write([]byte("stuck"))
		require.NoError(t, err)
		synctest.Wait()
		start := time.Now()
		require.NoError(t, c.Close())
		require.GreaterOrEqual(t, time.Since(start), closeFlushTimeout)
		writes, isClosed := g.state()
		require.True(t, isClosed)
		require.Len(t, writes, 1)
		g.mu.Lock()
		require.False(t, g.deadline.IsZero(), "a write deadline unblocks a real socket write")
		g.mu.Unlock()
		close(g.gate) // the flusher's write returns (as the deadline would make it)
		synctest.Wait()
	})
}

// A failed write closes the connection, so that paho's reader reports it
// lost, and every later Write returns the error.
func TestBufferedConnWriteError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedConn(false)
		g.fail = errors.New("connection reset by peer")
		c := newBufferedConn(g)
		_, err := c.Write([]byte("puback"))
		require.NoError(t, err, "the error surfaces on a later write")
		synctest.Wait()
		_, isClosed := g.state()
		require.True(t, isClosed)
		_, err = c.Write([]byte("puback"))
		require.ErrorIs(t, err, g.fail)
		require.NoError(t, c.Close())
	})
}

// Write waits once maxPendingWrite bytes are queued behind a write that
// does not return, as a blocked socket write would, and goes on when it
// does.
func TestBufferedConnBoundsPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedConn(true)
		c := newBufferedConn(g)
		_, err := c.Write([]byte("first"))
		require.NoError(t, err)
		synctest.Wait()
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		done := make(chan int, 1)
		go func() {
			n := 0
			for range maxPendingWrite/len(chunk) + 1 {
				if _, err := c.Write(chunk); err != nil {
					break
				}
				n++
			}
			done <- n
		}()
		synctest.Wait()
		select {
		case n := <-done:
			t.Fatalf("all %d chunks queued past the bound", n)
		default:
		}
		close(g.gate)
		require.Equal(t, maxPendingWrite/len(chunk)+1, <-done)
		require.NoError(t, c.Close())
		writes, _ := g.state()
		total := 0
		for _, w := range writes {
			total += len(w)
		}
		require.Equal(t, len("first")+(maxPendingWrite/len(chunk)+1)*len(chunk), total, "every byte written once")
	})
}

func strs(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}
