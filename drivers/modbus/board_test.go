package modbus

import (
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/simonvetter/modbus"
)

// board models a Modbus relay board: 16 coils and 16 discrete inputs, and a
// log of every value written to each coil.
type board struct {
	unit uint8

	mu     sync.Mutex
	coils  [16]bool
	inputs [16]bool
	writes map[uint16][]bool
	hang   chan struct{} // when set, coil requests block until it is closed
}

func newBoard(unit uint8) *board {
	return &board{unit: unit, writes: map[uint16][]bool{}}
}

func (b *board) HandleCoils(req *modbus.CoilsRequest) ([]bool, error) {
	b.mu.Lock()
	hang := b.hang
	b.mu.Unlock()
	if hang != nil {
		<-hang
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if req.UnitId != b.unit {
		return nil, modbus.ErrGWTargetFailedToRespond
	}
	if int(req.Addr)+int(req.Quantity) > len(b.coils) {
		return nil, modbus.ErrIllegalDataAddress
	}
	if req.IsWrite {
		for i, v := range req.Args {
			a := req.Addr + uint16(i)
			b.coils[a] = v
			b.writes[a] = append(b.writes[a], v)
		}
		return nil, nil
	}
	return append([]bool(nil), b.coils[req.Addr:req.Addr+req.Quantity]...), nil
}

func (b *board) HandleDiscreteInputs(req *modbus.DiscreteInputsRequest) ([]bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if req.UnitId != b.unit {
		return nil, modbus.ErrGWTargetFailedToRespond
	}
	if int(req.Addr)+int(req.Quantity) > len(b.inputs) {
		return nil, modbus.ErrIllegalDataAddress
	}
	return append([]bool(nil), b.inputs[req.Addr:req.Addr+req.Quantity]...), nil
}

func (b *board) HandleHoldingRegisters(*modbus.HoldingRegistersRequest) ([]uint16, error) {
	return nil, modbus.ErrIllegalFunction
}

func (b *board) HandleInputRegisters(*modbus.InputRegistersRequest) ([]uint16, error) {
	return nil, modbus.ErrIllegalFunction
}

func (b *board) coil(a uint16) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.coils[a]
}

func (b *board) history(a uint16) []bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]bool(nil), b.writes[a]...)
}

func (b *board) setInput(a uint16, v bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inputs[a] = v
}

// server is a Modbus TCP server on 127.0.0.1 serving a board.
type server struct {
	t   *testing.T
	url string
	srv *modbus.ModbusServer
}

// freeURL returns a tcp:// URL on a free local port.
func freeURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "tcp://127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// startServer serves b on url, retrying while the port is still held.
func startServer(t *testing.T, url string, b *board) *server {
	t.Helper()
	srv, err := modbus.NewServer(&modbus.ServerConfiguration{URL: url, Timeout: 10 * time.Second}, b)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		err = srv.Start()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("start server on %s: %v", url, err)
	}
	s := &server{t: t, url: url, srv: srv}
	t.Cleanup(s.stop)
	return s
}

func (s *server) stop() { _ = s.srv.Stop() }

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
