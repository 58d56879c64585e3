package power

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseVar(t *testing.T) {
	for _, tc := range []struct {
		line, want, wantErr string
	}{
		{line: `VAR ups1 ups.status "OL"`, want: "OL"},
		{line: `VAR ups1 ups.status "OB LB"`, want: "OB LB"},
		{line: `VAR ups1 ups.status ""`, want: ""},
		{line: `VAR ups1 ups.status "a\"b\\c"`, want: `a"b\c`},
		{line: `ERR DATA-STALE`, wantErr: "ERR DATA-STALE"},
		{line: `VAR ups2 ups.status "OL"`, wantErr: `unexpected reply "VAR ups2 ups.status \"OL\""`},
		{line: `VAR ups1 ups.status OL`, wantErr: "unexpected reply"},
		{line: `VAR ups1 ups.status "OL`, wantErr: "unexpected reply"},
		{line: `VAR ups1 ups.status "OL" x`, wantErr: "unexpected reply"},
		{line: `VAR ups1 ups.status "OL\`, wantErr: "unexpected reply"},
	} {
		got, err := parseVar(tc.line, "ups1", "ups.status")
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseVar(%q) = %q, %v; want error %q", tc.line, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseVar(%q) = %q, %v; want %q", tc.line, got, err, tc.want)
		}
	}
}

func TestStatusLost(t *testing.T) {
	for _, tc := range []struct {
		status  string
		lost    bool
		wantErr string
	}{
		{status: "OL"},
		{status: "OL CHRG"},
		{status: "OL BOOST"},
		{status: "OB", lost: true},
		{status: "OB DISCHRG", lost: true},
		{status: "OB LB", lost: true},
		{status: "OL LB", lost: true},
		{status: "FSD OB LB", lost: true},
		{status: "LBX"}, // whole flags only
		{status: "WAIT", wantErr: "upsd has no data"},
		{status: " ", wantErr: "empty ups.status"},
	} {
		lost, err := statusLost(tc.status)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("statusLost(%q) = %v, %v; want error %q", tc.status, lost, err, tc.wantErr)
			}
			continue
		}
		if err != nil || lost != tc.lost {
			t.Errorf("statusLost(%q) = %v, %v; want %v", tc.status, lost, err, tc.lost)
		}
	}
}

func TestQuoteNUT(t *testing.T) {
	for in, want := range map[string]string{
		"secret":      "secret",
		"":            `""`,
		"se cret":     `"se cret"`,
		`a"b\c`:       `"a\"b\\c"`,
		"tab\there":   "\"tab\there\"",
		"ünïcode-pw!": "ünïcode-pw!",
	} {
		if got := quoteNUT(in); got != want {
			t.Errorf("quoteNUT(%q) = %q, want %q", in, got, want)
		}
	}
}

// scriptServer is a loopback TCP server that answers each request line with
// reply(line), recording the lines and counting connections. It checks the
// wire format; the real upsd is exercised in nut_test.go.
type scriptServer struct {
	ln    net.Listener
	reply func(conn int, line string) (string, bool) // false: close the connection

	mu    sync.Mutex
	conns int
	lines []string
	wg    sync.WaitGroup
}

func newScriptServer(t *testing.T, reply func(conn int, line string) (string, bool)) *scriptServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scriptServer{ln: ln, reply: reply}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *scriptServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns++
		id := s.conns
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				s.mu.Lock()
				s.lines = append(s.lines, line)
				s.mu.Unlock()
				out, keep := s.reply(id, strings.TrimSuffix(line, "\n"))
				if out != "" {
					c.Write([]byte(out + "\n"))
				}
				if !keep {
					return
				}
			}
		}()
	}
}

func (s *scriptServer) nut(t *testing.T, opts NUTOptions) *NUT {
	t.Helper()
	_, p, _ := net.SplitHostPort(s.ln.Addr().String())
	opts.Host = "127.0.0.1"
	opts.Port, _ = strconv.Atoi(p)
	opts.UPS = "ups1"
	n, err := NewNUT(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func (s *scriptServer) stats() (int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, append([]string(nil), s.lines...)
}

func TestNUTWire(t *testing.T) {
	ctx := context.Background()

	t.Run("login then one connection for every request", func(t *testing.T) {
		s := newScriptServer(t, func(_ int, line string) (string, bool) {
			if strings.HasPrefix(line, "GET VAR") {
				return `VAR ups1 ups.status "OL"`, true
			}
			return "OK", true
		})
		n := s.nut(t, NUTOptions{Username: "mon", Password: `p w"\`})
		for range 3 {
			if _, _, err := n.Poll(ctx); err != nil {
				t.Fatal(err)
			}
		}
		conns, lines := s.stats()
		want := []string{"USERNAME mon\n", "PASSWORD \"p w\\\"\\\\\"\n",
			"GET VAR ups1 ups.status\n", "GET VAR ups1 ups.status\n", "GET VAR ups1 ups.status\n"}
		if conns != 1 || strings.Join(lines, "") != strings.Join(want, "") {
			t.Errorf("%d connections, lines %q; want 1, %q", conns, lines, want)
		}
	})

	t.Run("login refused", func(t *testing.T) {
		s := newScriptServer(t, func(_ int, line string) (string, bool) {
			if strings.HasPrefix(line, "PASSWORD") {
				return "ERR ACCESS-DENIED", true
			}
			return "OK", true
		})
		_, _, err := s.nut(t, NUTOptions{Username: "mon", Password: "x"}).Poll(ctx)
		if err == nil || !strings.HasSuffix(err.Error(), ": PASSWORD: ERR ACCESS-DENIED") {
			t.Errorf("Poll() error = %v, want a PASSWORD: ERR ACCESS-DENIED", err)
		}
	})

	t.Run("ERR keeps the connection, garbage drops it", func(t *testing.T) {
		replies := []string{"ERR DATA-STALE", `VAR ups1 ups.status "OB"`, "garbage", `VAR ups1 ups.status "OL"`}
		var mu sync.Mutex
		s := newScriptServer(t, func(_ int, _ string) (string, bool) {
			mu.Lock()
			defer mu.Unlock()
			r := replies[0]
			replies = replies[1:]
			return r, true
		})
		n := s.nut(t, NUTOptions{})
		_, _, err := n.Poll(ctx)
		if err == nil || !strings.HasSuffix(err.Error(), "@"+s.ln.Addr().String()+": ERR DATA-STALE") {
			t.Errorf("Poll() 1 error = %v, want ERR DATA-STALE", err)
		}
		if lost, detail, err := n.Poll(ctx); !lost || detail != `ups.status "OB"` || err != nil {
			t.Errorf("Poll() 2 = %v, %q, %v", lost, detail, err)
		}
		if _, _, err := n.Poll(ctx); err == nil || !strings.Contains(err.Error(), `unexpected reply "garbage"`) {
			t.Errorf("Poll() 3 error = %v, want unexpected reply", err)
		}
		if lost, _, err := n.Poll(ctx); lost || err != nil {
			t.Errorf("Poll() 4 = %v, %v", lost, err)
		}
		if conns, _ := s.stats(); conns != 2 {
			t.Errorf("%d connections, want 2 (one dropped after garbage)", conns)
		}
	})

	t.Run("closed idle connection is retried at once", func(t *testing.T) {
		s := newScriptServer(t, func(conn int, _ string) (string, bool) {
			// The first connection answers once, then is closed, as by an
			// upsd restart between two polls.
			return `VAR ups1 ups.status "OL"`, conn != 1
		})
		n := s.nut(t, NUTOptions{})
		for i := range 3 {
			if _, _, err := n.Poll(ctx); err != nil {
				t.Fatalf("Poll() %d: %v", i, err)
			}
		}
		if conns, _ := s.stats(); conns != 2 {
			t.Errorf("%d connections, want 2", conns)
		}
	})

	t.Run("overlong reply", func(t *testing.T) {
		s := newScriptServer(t, func(int, string) (string, bool) {
			return strings.Repeat("x", 2*maxNUTLine), true
		})
		_, _, err := s.nut(t, NUTOptions{}).Poll(ctx)
		if err == nil || !strings.Contains(err.Error(), "reply longer than 4096 bytes") {
			t.Errorf("Poll() error = %v", err)
		}
	})
}
