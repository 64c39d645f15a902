package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ternmesh/tern/api"
	"github.com/ternmesh/tern/transports/kiss"
	"github.com/ternmesh/tern/transports/kiss/kisstest"
)

// Helpers for the tests over real Dire Wolf TNCs: the TNC pair of
// ../shared/harness/direwolf-pair, a capture of what a TNC hears on the
// air, a tap on what a daemon hands its TNC, and a daemon launcher for
// benchmarks (startDaemon takes a *testing.T).

// dwAudio1200 runs 1200-baud TNCs at 22050 samples/s (see kisstest.Audio1200).
const dwAudio1200 = kisstest.Audio1200

// tncPair is two Dire Wolf TNCs whose audio is looped into each other.
type tncPair struct{ *kisstest.DireWolfPair }

// url is the link URL of a daemon with callsign call on the TNC listening
// on port (the TNC's own port, or a tap in front of it). The TNCs run in
// full duplex: the harness sends audio only while a TNC transmits, so a
// receiver's carrier detect stays on after the last frame it heard, and in
// half duplex the TNC then waits for a clear channel in vain and discards
// the frames ("Waited too long for clear channel").
func (p *tncPair) url(port int, call string) string {
	return fmt.Sprintf("kiss+tcp://127.0.0.1:%d?call=%s&baud=%d&txdelay=10&fullduplex=1", port, call, p.Baud)
}

// logTail returns the last lines of both TNCs' logs.
func (p *tncPair) logTail() string { return p.DireWolfPair.LogTail() }

// startTNCs starts a Dire Wolf pair at baud with DW_EXTRA=extra.
func startTNCs(tb testing.TB, baud int, extra string) *tncPair {
	tb.Helper()
	return &tncPair{kisstest.StartDireWolfPair(tb, baud, extra)}
}

// capture collects AX.25 frames: what a TNC decoded from the air (listen)
// or what a daemon handed its TNC (tap).
type capture struct {
	mu     sync.Mutex
	frames []kiss.AX25Frame
}

func (c *capture) add(f kiss.Frame) {
	if f.Command != kiss.CmdData {
		return
	}
	ax, err := kiss.DecodeAX25(f.Data)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.frames = append(c.frames, ax)
	c.mu.Unlock()
}

// Frames returns a copy of the frames captured so far.
func (c *capture) Frames() []kiss.AX25Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]kiss.AX25Frame(nil), c.frames...)
}

// decodeInto feeds every KISS frame read from r to c until r ends.
func (c *capture) decodeInto(r io.Reader) {
	dec := kiss.NewDecoder(r, 0)
	for {
		f, err := dec.ReadFrame()
		if err != nil {
			if errors.Is(err, kiss.ErrBadEscape) || errors.Is(err, kiss.ErrFrameTooLong) {
				continue
			}
			return
		}
		c.add(f)
	}
}

// listenAir connects a plain KISS client to a TNC: Dire Wolf gives every
// client the frames it decodes from the air.
func listenAir(tb testing.TB, port int) *capture {
	tb.Helper()
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		tb.Fatal(err)
	}
	c := &capture{}
	done := make(chan struct{})
	go func() { defer close(done); c.decodeInto(conn) }()
	tb.Cleanup(func() { conn.Close(); <-done })
	return c
}

// tapTNC is a TCP relay in front of a TNC's KISS port that records every
// frame its clients send to the TNC. It returns the relay's port.
func tapTNC(tb testing.TB, tncPort int) (int, *capture) {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	c := &capture{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(cs ...net.Conn) {
		mu.Lock()
		conns = append(conns, cs...)
		mu.Unlock()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			tnc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tncPort))
			if err != nil {
				client.Close()
				continue
			}
			track(client, tnc)
			pr, pw := io.Pipe()
			wg.Add(3)
			go func() { defer wg.Done(); c.decodeInto(pr) }()
			go func() {
				defer wg.Done()
				_, _ = io.Copy(io.MultiWriter(tnc, pw), client)
				pw.Close()
				tnc.Close()
			}()
			go func() { defer wg.Done(); _, _ = io.Copy(client, tnc); client.Close() }()
		}
	}()
	tb.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, cn := range conns {
			cn.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().(*net.TCPAddr).Port, c
}

// waitLong is waitFor with a deadline fit for a 1200-baud channel.
func waitLong(tb testing.TB, what string, d time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting until %s", d, what)
		}
		<-tick.C
	}
}

// benchDaemon is a `tern run` process for benchmarks.
type benchDaemon struct {
	c    *api.Client
	addr string
	uri  string
}

func startBenchDaemon(tb testing.TB, name string, extra ...string) *benchDaemon {
	tb.Helper()
	data := filepath.Join(tb.TempDir(), name)
	logf, err := os.Create(data + ".log")
	if err != nil {
		tb.Fatal(err)
	}
	args := append([]string{"run", "--data", data, "--name", name, "--mdns", "off", "--web", "off"}, extra...)
	cmd := exec.Command(ternBin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	d := &benchDaemon{c: api.NewClient(socketPath(data))}
	var id api.ID
	waitLong(tb, name+" answers on its API", 30*time.Second, func() bool {
		select {
		case <-done:
			b, _ := os.ReadFile(data + ".log")
			tb.Fatalf("%s exited early:\n%s", name, b)
		default:
		}
		return d.c.Do(context.Background(), "GET", "/v1/id", nil, &id) == nil
	})
	d.addr, d.uri = id.Address, id.URI
	return d
}
