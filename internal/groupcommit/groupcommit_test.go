package groupcommit

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// store is the smallest store on a Committer: Append queues, commit takes
// the queue, finish records that the files were closed.
type store struct {
	mu        sync.Mutex
	c         *Committer
	queue     []int
	committed []int
	finished  int
	finishErr error
}

func newStore() *store {
	s := &store{}
	s.c = New(&s.mu)
	return s
}

func (s *store) append(v int) bool {
	s.mu.Lock()
	if s.c.Closed() {
		s.mu.Unlock()
		return false
	}
	s.queue = append(s.queue, v)
	s.mu.Unlock()
	s.c.Wake()
	return true
}

func (s *store) commit() {
	s.mu.Lock()
	q := s.queue
	s.queue = nil
	s.committed = append(s.committed, q...)
	s.mu.Unlock()
}

func (s *store) finish() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finished++
	return s.finishErr
}

func (s *store) state() ([]int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.committed, s.finished
}

var errTwice = errors.New("twice")

// run starts s's committer and returns once it runs (it committed a first
// record), with the channel Run's result arrives on.
func run(t *testing.T, ctx context.Context, s *store) <-chan error {
	t.Helper()
	committed := make(chan struct{}, 1)
	commit := func() {
		s.commit()
		select {
		case committed <- struct{}{}:
		default:
		}
	}
	ran := make(chan error, 1)
	go func() { ran <- s.c.Run(ctx, errTwice, commit, s.finish) }()
	require.True(t, s.append(-1))
	<-committed // only a running Run commits
	return ran
}

// Close waits for Run: everything appended before it is committed, the
// files are closed once, Run's closing error is Close's, and later appends
// are refused.
func TestCloseWaitsForRun(t *testing.T) {
	s := newStore()
	s.finishErr = errors.New("close failed")
	ran := run(t, context.Background(), s)
	for i := range 100 {
		require.True(t, s.append(i))
	}
	onClose := false
	err := s.c.Close(func() { onClose = true }, s.commit, s.finish)
	require.Equal(t, s.finishErr, err)
	require.Equal(t, s.finishErr, <-ran)
	require.True(t, onClose)
	committed, finished := s.state()
	require.Len(t, committed, 101)
	require.Equal(t, 1, finished)
	require.False(t, s.append(100), "closed")
	require.Equal(t, s.finishErr, s.c.Close(nil, s.commit, s.finish), "a second Close says the same")
	require.ErrorIs(t, s.c.Run(context.Background(), errTwice, s.commit, s.finish), errTwice)
}

// Without Run, Close commits and closes the files itself, once.
func TestCloseWithoutRun(t *testing.T) {
	s := newStore()
	require.True(t, s.append(1))
	require.NoError(t, s.c.Close(nil, s.commit, s.finish))
	require.NoError(t, s.c.Close(nil, s.commit, s.finish))
	committed, finished := s.state()
	require.Equal(t, []int{1}, committed)
	require.Equal(t, 1, finished)
	require.ErrorIs(t, s.c.Run(context.Background(), errTwice, s.commit, s.finish), errTwice, "Run after Close")
}

// The end of Run's context closes the store like Close: what was queued is
// committed, the files closed, new appends refused.
func TestContextEndCloses(t *testing.T) {
	s := newStore()
	ctx, cancel := context.WithCancel(context.Background())
	ran := run(t, ctx, s)
	require.True(t, s.append(1))
	cancel()
	require.NoError(t, <-ran)
	committed, finished := s.state()
	require.Equal(t, []int{-1, 1}, committed)
	require.Equal(t, 1, finished)
	require.False(t, s.append(2))
	require.NoError(t, s.c.Close(nil, s.commit, s.finish))
	_, finished = s.state()
	require.Equal(t, 1, finished, "not closed twice")
}

// Run called while another runs fails at once, leaving the first to run.
func TestRunTwice(t *testing.T) {
	s := newStore()
	ran := run(t, context.Background(), s)
	require.ErrorIs(t, s.c.Run(context.Background(), errTwice, s.commit, s.finish), errTwice)
	require.NoError(t, s.c.Close(nil, s.commit, s.finish))
	require.NoError(t, <-ran)
}
