package kiss_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ternmesh/tern/transports/kiss"
	"github.com/ternmesh/tern/transports/kiss/kisstest"
)

// These tests run two real Dire Wolf TNCs joined by an audio loop
// (../shared/harness/direwolf-pair beside the repository).

// audio1200: see kisstest.Audio1200.
const audio1200 = kisstest.Audio1200

type dwPair struct {
	a, b   *kiss.Device
	portA  int
	portB  int
	baud   int
	logDir string
}

func startPair(t *testing.T, baud int, extra string) *dwPair {
	t.Helper()
	tnc := kisstest.StartDireWolfPair(t, baud, extra)
	dir, pa, pb := tnc.Dir, tnc.PortA, tnc.PortB
	open := func(port int, call string) *kiss.Device {
		u := mustURL(t, fmt.Sprintf("kiss+tcp://127.0.0.1:%d?call=%s&baud=%d&txdelay=10&fullduplex=1", port, call, baud))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d, err := kiss.Open(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	return &dwPair{a: open(pa, "N0CALL-7"), b: open(pb, "N0CALL-8"), portA: pa, portB: pb, baud: baud, logDir: dir}
}

// payload is frame seq of stream s: recognisable, with every byte value.
func payload(s byte, seq, n int) []byte {
	p := make([]byte, n)
	p[0], p[1] = s, byte(seq)
	for i := 2; i < n; i++ {
		p[i] = byte(i*7 + seq*13 + int(s))
	}
	return p
}

// rawClient is a plain KISS client on a TNC: it sees every frame the TNC
// decodes from the air.
func rawClient(t *testing.T, port int) <-chan kiss.AX25Frame {
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch := make(chan kiss.AX25Frame, 64)
	go func() {
		dec := kiss.NewDecoder(c, 0)
		for {
			f, err := dec.ReadFrame()
			if err != nil && !errors.Is(err, kiss.ErrBadEscape) {
				close(ch)
				return
			}
			if ax, err := kiss.DecodeAX25(f.Data); err == nil && f.Command == kiss.CmdData {
				select {
				case ch <- ax:
				default:
				}
			}
		}
	}()
	return ch
}

// exchange sends n frames of size bytes from src to dst, each after the
// previous one arrived or was given up for lost (stop and wait: the
// harness's audio loop is not paced in real time and loses audio when a
// TNC keys up with several frames queued). It checks that every frame
// that arrives is intact and returns how many arrived and the time taken.
func exchange(t *testing.T, src, dst *kiss.Device, stream byte, n, size int) (int, time.Duration) {
	t.Helper()
	perFrame := src.TimeOnAir(size) + 2*time.Second
	start := time.Now()
	seen := map[int]bool{}
	for i := 0; i < n; i++ {
		if err := src.Transmit(context.Background(), payload(stream, i, size)); err != nil {
			t.Errorf("transmit: %v", err)
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), perFrame)
		for !seen[i] {
			rx, err := dst.Receive(ctx)
			if err != nil {
				break // lost
			}
			if len(rx.Data) != size || rx.Data[0] != stream {
				continue // another stream's frame
			}
			seq := int(rx.Data[1])
			if !bytes.Equal(rx.Data, payload(stream, seq, size)) {
				t.Errorf("stream %d frame %d arrived corrupted", stream, seq)
			}
			seen[seq] = true
		}
		cancel()
	}
	return len(seen), time.Since(start)
}

// bothWays runs exchange in both directions at once (the TNCs are in full
// duplex: the two audio paths are separate) and logs the throughput.
func bothWays(t *testing.T, p *dwPair, n, size int) {
	var wg sync.WaitGroup
	got := make([]int, 2)
	took := make([]time.Duration, 2)
	for i, d := range [][2]*kiss.Device{{p.a, p.b}, {p.b, p.a}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], took[i] = exchange(t, d[0], d[1], byte(i+1), n, size)
		}()
	}
	wg.Wait()
	line := float64(p.baud) / 8
	for i := range got {
		if got[i] != n {
			t.Errorf("direction %d: %d of %d frames arrived", i, got[i], n)
		}
		rate := float64(got[i]*size) / took[i].Seconds()
		t.Logf("%d baud, direction %d: %d x %d B in %v = %.0f B/s of info, %.0f%% of the %.0f B/s line rate (airtime model: %.0f B/s)",
			p.baud, i, got[i], size, took[i].Round(time.Millisecond), rate, 100*rate/line, line, float64(size)/p.a.TimeOnAir(size).Seconds())
	}
}

func TestDireWolf1200(t *testing.T) {
	t.Parallel()
	p := startPair(t, 1200, audio1200)
	raw := rawClient(t, p.portB)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("byte exact", func(t *testing.T) {
		want := payload(9, 0, 256)
		want[10], want[11], want[12] = kiss.FEND, kiss.FESC, kiss.FEND
		if err := p.a.Transmit(ctx, want); err != nil {
			t.Fatal(err)
		}
		rx, err := p.b.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rx.Data, want) {
			t.Fatalf("B received %d bytes, not the %d sent", len(rx.Data), len(want))
		}
		// What the TNC decoded from the air carries our callsign.
		select {
		case ax := <-raw:
			if ax.Src.String() != "N0CALL-7" || ax.Dest.String() != "TERN" || !bytes.Equal(ax.Info, want) {
				t.Fatalf("TNC B heard %v>%v", ax.Src, ax.Dest)
			}
		case <-ctx.Done():
			t.Fatal("the raw KISS client on TNC B heard nothing")
		}
	})

	t.Run("non-Tern frames ignored", func(t *testing.T) {
		before := p.b.Stats()
		aprs := kiss.NewUI(kiss.Address{Call: "APGDW"}, kiss.Address{Call: "N0CALL", SSID: 7}, nil, []byte("!4903.50N/07201.75W-Test"))
		other := kiss.NewUI(kiss.Address{Call: "BEACON"}, kiss.Address{Call: "N0CALL", SSID: 7}, nil, []byte("hello"))
		for _, f := range []kiss.AX25Frame{aprs, other} {
			if err := p.a.TransmitAX25(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.a.Transmit(ctx, []byte("marker")); err != nil {
			t.Fatal(err)
		}
		rx, err := p.b.Receive(ctx)
		if err != nil || string(rx.Data) != "marker" {
			t.Fatalf("B received %q, %v; want only the marker", rx.Data, err)
		}
		if got := p.b.Stats().RxOtherDest - before.RxOtherDest; got < 2 {
			t.Fatalf("B counted %d frames to other destinations, want 2", got)
		}
		heard := map[string]bool{}
		for len(heard) < 3 {
			select {
			case ax := <-raw:
				heard[ax.Dest.String()] = true
			case <-ctx.Done():
				t.Fatalf("TNC B heard only %v", heard)
			}
		}
	})

	t.Run("20 frames both ways", func(t *testing.T) { bothWays(t, p, 20, 256) })
}

func TestDireWolf9600(t *testing.T) {
	t.Parallel()
	p := startPair(t, 9600, "")
	raw := rawClient(t, p.portB)
	bothWays(t, p, 20, 256)
	select {
	case ax := <-raw:
		if ax.Src.String() != "N0CALL-7" {
			t.Errorf("TNC B heard a frame from %v, want N0CALL-7", ax.Src)
		}
	default:
		t.Error("the raw KISS client on TNC B heard nothing")
	}

	// kiss+serial with the real go.bug.st/serial driver, on a pseudo-terminal
	// that socat joins to TNC A's KISS port (as a hardware TNC on a tty).
	tty := ptyToTCP(t, p.portA)
	c, err := kiss.Open(context.Background(), mustURL(t, "kiss+serial://"+tty+"?baud=19200&airbaud=9600&call=N0CALL-9"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Transmit(context.Background(), []byte("via a serial port")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rx, err := p.b.Receive(ctx)
	if err != nil || string(rx.Data) != "via a serial port" {
		t.Fatalf("B received %q, %v from the serial-port client", rx.Data, err)
	}
}

// ptyToTCP starts socat joining a new pseudo-terminal to a TCP port and
// returns the terminal's path.
func ptyToTCP(t *testing.T, port int) string {
	t.Helper()
	cmd := exec.Command("socat", "-d", "-d", "pty,raw,echo=0", fmt.Sprintf("tcp:127.0.0.1:%d", port))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if _, tty, ok := strings.Cut(sc.Text(), "PTY is "); ok {
			go func() { _, _ = io.Copy(io.Discard, stderr) }()
			return strings.TrimSpace(tty)
		}
	}
	t.Fatal("socat did not report its pseudo-terminal")
	return ""
}

// With injected bit errors Dire Wolf drops frames whose CRC fails: some
// frames are lost, and every frame that arrives must be intact.
func TestDireWolfBitErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		ber string
		n   int
	}{{"1e-4", 10}, {"1e-3", 8}} {
		t.Run("BER "+c.ber, func(t *testing.T) {
			p := startPair(t, 1200, audio1200+" -e "+c.ber)
			const size = 256
			got, el := exchange(t, p.a, p.b, 3, c.n, size)
			t.Logf("1200 baud with BER %s: %d of %d frames of %d B arrived, all intact, in %v (loss %.0f%%)",
				c.ber, got, c.n, size, el.Round(time.Millisecond), 100*float64(c.n-got)/float64(c.n))
			if c.ber == "1e-4" && got == 0 {
				t.Fatal("no frame survived a 1e-4 bit error rate: expected most to")
			}
			if st := p.b.Stats(); st.RxMalformed != 0 {
				t.Errorf("B passed %d malformed frames up from the TNC", st.RxMalformed)
			}
		})
	}
}
