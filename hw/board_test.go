package hw

import (
	"strings"
	"testing"

	"periph.io/x/conn/v3"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/spi"
)

func TestLookupKnownBoards(t *testing.T) {
	want := map[string]struct {
		chip             Chip
		spi              string
		reset, irq, busy int
	}{
		"waveshare-sx1262": {SX1262, "SPI0.0", 18, 16, 20},
		"adafruit-rfm9x":   {SX1276, "SPI0.1", 25, 22, -1},
		"elecrow-rfm95":    {SX1276, "SPI0.1", 22, 25, -1},
		"dragino":          {SX1276, "SPI0.0", 17, 4, -1},
	}
	for name, w := range want {
		b, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		busy, ok := b.Pin(PinBusy)
		if !ok {
			busy = -1
		}
		if b.Chip != w.chip || b.SPI != w.spi || b.Pins[PinReset] != w.reset || b.Pins[PinIRQ] != w.irq || busy != w.busy {
			t.Errorf("%s: %v", name, b)
		}
	}
	ws, _ := Lookup("Waveshare-SX1262")
	if ws.Pins[PinCS] != 21 || !ws.DIO2RFSwitch {
		t.Errorf("waveshare: %v", ws)
	}
	u, _ := Lookup("waveshare-uart")
	if u.Serial != "/dev/ttyS0" || u.Pins[PinM0] != 22 || u.Pins[PinM1] != 27 {
		t.Errorf("uart: %v", u)
	}
}

func TestLookupOverrides(t *testing.T) {
	b, err := Lookup("adafruit-rfm9x?reset=17&irq=GPIO4&spi=SPI1.0")
	if err != nil {
		t.Fatal(err)
	}
	if b.Pins[PinReset] != 17 || b.Pins[PinIRQ] != 4 || b.SPI != "SPI1.0" {
		t.Errorf("overrides not applied: %v", b)
	}
	if orig, _ := Lookup("adafruit-rfm9x"); orig.Pins[PinReset] != 25 {
		t.Error("override leaked into the table")
	}
	b, _ = Lookup("dragino?cs=none")
	if _, ok := b.Pin(PinCS); ok {
		t.Error("cs=none kept the pin")
	}
	for spec, want := range map[string]string{
		"nosuch":                  "known boards are adafruit-rfm9x, dragino",
		"dragino?reset=99":        "BCM GPIO number",
		"dragino?colour=red":      "unknown override",
		"waveshare-sx1262?tcxo=x": "TCXO voltage",
	} {
		if _, err := Lookup(spec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Lookup(%q) = %v, want an error containing %q", spec, err, want)
		}
	}
}

type recConn struct{ log *[]string }

func (r recConn) String() string               { return "rec" }
func (r recConn) Duplex() conn.Duplex          { return conn.Full }
func (r recConn) TxPackets([]spi.Packet) error { return nil }
func (r recConn) Tx(w, rd []byte) error        { *r.log = append(*r.log, "tx"); return nil }

type recPin struct {
	gpio.PinIO // nil: only Out is used
	log        *[]string
}

func (p *recPin) Out(l gpio.Level) error { *p.log = append(*p.log, "cs="+l.String()); return nil }

func TestManualCS(t *testing.T) {
	var log []string
	m := &ManualCS{Conn: recConn{&log}, CS: &recPin{log: &log}}
	m.Tx([]byte{1}, make([]byte, 1))
	if got := strings.Join(log, ","); got != "cs=Low,tx,cs=High" {
		t.Errorf("CS sequence %s", got)
	}
}

func FuzzLookup(f *testing.F) {
	f.Add("waveshare-sx1262?busy=20&irq=16")
	f.Add("dragino?cs=none&spi=SPI0.1")
	f.Add("adafruit-rfm9x?%zz")
	f.Fuzz(func(t *testing.T, spec string) {
		b, err := Lookup(spec)
		if err != nil {
			return
		}
		for role, n := range b.Pins {
			if n < 0 || n > 63 {
				t.Fatalf("%s=%d accepted", role, n)
			}
		}
		_ = b.String()
	})
}
