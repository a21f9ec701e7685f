package mqttsource

import (
	"bufio"
	"net"
	"sync"
	"time"
)

// bufferedConn is a broker connection whose reads go through a buffer and
// whose writes are coalesced.
//
// Reads: paho reads a packet's fixed header a byte at a time, then its
// body: three or more reads per message, each a system call on a bare TCP
// connection. Through the buffer one call takes whatever the socket holds.
//
// Writes: paho writes every packet with a call of its own from one
// goroutine, and its acks come in bursts (a stored InfluxDB batch acks
// hundreds of messages at once): one system call per PUBACK was the
// largest single cost of receiving. Write copies the packet to a pending
// buffer and returns; a flusher goroutine writes everything pending in one
// call, so the acks that queue while one write is in the kernel leave
// together in the next. An ack is sent only after its message is safe,
// and a delay of microseconds in sending it changes nothing: a crash
// before it leaves means a redelivery, which the pipeline takes as a
// duplicate.
//
// A failed write closes the connection (paho's reader then reports it lost
// and reconnects) and is returned by every later Write. Close writes what
// is pending first (paho's DISCONNECT is written just before it closes),
// for at most closeFlushTimeout. A write deadline paho sets around a Write
// does not bound the flusher's write; paho sets them only around publishes,
// which the source's connection does not carry (it subscribes and acks;
// alerts go out on the MQTT sink's own connection). A connection that
// stops taking bytes is found by keep-alive, as before: its ping goes
// unanswered, paho closes the connection, and Close's deadline ends the
// stuck write.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader

	mu      sync.Mutex
	cond    sync.Cond // signalled when the flusher took or wrote pending bytes, or stopped
	pending []byte    // written by paho, not yet by the flusher
	spare   []byte    // the flusher's previous buffer, reused
	err     error     // the first write error, or net.ErrClosed after Close
	wake    chan struct{}
	stopped chan struct{} // closed when the flusher returns
}

// readBufferSize is the read buffer of a broker connection: a few dozen
// device messages.
const readBufferSize = 64 << 10

// maxPendingWrite bounds what Write buffers before it waits for the
// flusher, as a blocked socket write would.
const maxPendingWrite = 256 << 10

// closeFlushTimeout is how long Close waits for pending bytes to be
// written to a connection that does not take them.
const closeFlushTimeout = time.Second

func newBufferedConn(conn net.Conn) *bufferedConn {
	c := &bufferedConn{
		Conn:    conn,
		r:       bufio.NewReaderSize(conn, readBufferSize),
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
	}
	c.cond.L = &c.mu
	go c.flush()
	return c
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Write queues p for the flusher. It waits only when maxPendingWrite bytes
// are already queued.
func (c *bufferedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for c.err == nil && len(c.pending) >= maxPendingWrite {
		c.cond.Wait()
	}
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	c.pending = append(c.pending, p...)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // the flusher is already due to look
	}
	return len(p), nil
}

// flush writes what is pending, in one call per wake-up, until the
// connection fails or is closed.
func (c *bufferedConn) flush() {
	defer close(c.stopped)
	for range c.wake {
		c.mu.Lock()
		if len(c.pending) == 0 {
			stop := c.err != nil
			c.mu.Unlock()
			if stop {
				return
			}
			continue
		}
		buf := c.pending
		c.pending, c.spare = c.spare[:0], nil
		c.cond.Broadcast() // room for writers waiting on the bound
		c.mu.Unlock()

		_, err := c.Conn.Write(buf)

		c.mu.Lock()
		if cap(buf) <= maxPendingWrite { // keep an ordinary buffer, not a burst's
			c.spare = buf[:0]
		}
		if err != nil && c.err == nil {
			c.err = err
			c.pending = nil
		}
		failed, more := c.err != nil, len(c.pending) > 0
		c.cond.Broadcast()
		c.mu.Unlock()
		if err != nil {
			_ = c.Conn.Close() // paho's reader sees the connection lost
		}
		if failed && !more {
			return
		}
		if more {
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
	}
}

// Close writes what is pending (for at most closeFlushTimeout), then
// closes the connection. Later Writes fail with net.ErrClosed.
func (c *bufferedConn) Close() error {
	c.mu.Lock()
	if c.err == nil {
		c.err = net.ErrClosed
	}
	c.mu.Unlock()
	// The deadline also unblocks a write already stuck in the kernel.
	_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
	select {
	case c.wake <- struct{}{}:
	default:
	}
	timer := time.NewTimer(closeFlushTimeout + 100*time.Millisecond)
	defer timer.Stop()
	select {
	case <-c.stopped:
	case <-timer.C:
	}
	return c.Conn.Close()
}
