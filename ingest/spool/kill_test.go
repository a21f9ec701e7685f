package spool

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

const (
	helperDirEnv  = "FENCELINE_SPOOL_HELPER_DIR"
	helperBaseEnv = "FENCELINE_SPOOL_HELPER_BASE"
)

// TestHelperProcess is the process TestKill9 kills: it appends records
// (printing "A id" once each is called back) while it replays the spool
// (printing "S id" for each record InfluxDB would have taken). It is not a
// test of its own: without its environment it returns at once.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		return
	}
	base, err := strconv.Atoi(os.Getenv(helperBaseEnv))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{SegmentBytes: 16 << 10, ReplayBytes: 2000, MaxReplayBackoff: 10 * time.Millisecond},
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var out sync.Mutex
	print := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Fprintf(os.Stdout, format, args...) // unbuffered: a line printed is a line the parent reads
	}
	ctx := context.Background()
	go func() { _ = s.Run(ctx) }()
	go func() {
		_ = s.Replay(ctx, func(_ context.Context, body []byte) error {
			// A slow InfluxDB: replay trails the appends, so the kill
			// finds records on both sides of the cursor.
			time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
			for _, l := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
				print("S %s\n", l[len("m,id="):len("m,id=")+6])
			}
			return nil
		})
	}()
	sem := make(chan struct{}, 32) // appends in flight: group commits of many
	for i := base; ; i++ {
		sem <- struct{}{}
		s.Append(line(i, 100+i%300), func(err error) {
			if err == nil {
				print("A %06d\n", i)
			}
			<-sem
		})
	}
}

// TestKill9 kills a process that spools and replays at random moments, five
// times over the same folder, and proves from what it printed that: every
// record it was told was durable is replayed (nothing lost); each process
// replays records in order without repeating one; and a restart resumes at
// or before the first record not yet acknowledged (nothing skipped — a
// record may be sent again, which idempotent point times make harmless).
func TestKill9(t *testing.T) {
	dir := t.TempDir()
	const rounds, step = 5, 100000
	acked := map[int]bool{}
	var runs [][]int // the ids each process replayed, in order
	for r := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), helperDirEnv+"="+dir, fmt.Sprintf("%s=%d", helperBaseEnv, r*step))
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		killAfter := 50 + rand.IntN(2000)
		var sent []int
		n := 0
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			kind, num, _ := strings.Cut(sc.Text(), " ")
			id, err := strconv.Atoi(num)
			require.NoError(t, err, sc.Text())
			switch kind {
			case "A":
				acked[id] = true
				n++
				if n == killAfter {
					require.NoError(t, cmd.Process.Kill()) // SIGKILL: no defer, no flush, no Close
				}
			case "S":
				sent = append(sent, id)
			}
		}
		_ = cmd.Wait()
		runs = append(runs, sent)
		t.Logf("round %d: killed after %d acked appends; %d records replayed before the kill", r, killAfter, len(sent))
	}
	// What is left is replayed by a last, orderly process.
	rs := start(t, dir, Options{})
	rp := replay(t, rs.s, nil)
	waitFor(t, "drained", func() bool { return rs.s.Stats().Records == 0 })
	var last []int
	for _, l := range ids(rp.lines()) {
		id, err := strconv.Atoi(strings.TrimPrefix(l[:len("m,id=000000")], "m,id="))
		require.NoError(t, err)
		last = append(last, id)
	}
	runs = append(runs, last)

	// U: every record that reached the spool, in spool order.
	set := map[int]bool{}
	for _, run := range runs {
		for _, id := range run {
			set[id] = true
		}
	}
	var u []int
	for id := range set {
		u = append(u, id)
	}
	slices.Sort(u)
	pos := map[int]int{}
	for i, id := range u {
		pos[id] = i
	}
	for id := range acked {
		require.True(t, set[id], "record %d was acknowledged as durable and never replayed", id)
	}
	// Each process's records are a prefix of what it appended: no hole.
	for r := range rounds {
		var mine []int
		for _, id := range u {
			if id >= r*step && id < (r+1)*step {
				mine = append(mine, id)
			}
		}
		for i, id := range mine {
			require.Equal(t, r*step+i, id, "round %d: a hole in the spooled records", r)
		}
	}
	next := 0 // position in u of the first record not yet replayed
	for i, run := range runs {
		for j, id := range run {
			if j == 0 {
				require.LessOrEqual(t, pos[id], next, "run %d skipped records after a restart", i)
			} else {
				require.Equal(t, pos[run[j-1]]+1, pos[id], "run %d replayed out of order or twice", i)
			}
		}
		if len(run) > 0 {
			next = max(next, pos[run[len(run)-1]]+1)
		}
	}
	require.Equal(t, len(u), next, "everything replayed in the end")
}
