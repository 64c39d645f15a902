package chipemu_test

import (
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/spi"

	"github.com/ternmesh/tern/lora/chipemu"
	"github.com/ternmesh/tern/lora/radiosim"
)

// These tests drive the emulators with deliberately wrong sequences and
// check that each mistake is caught: a driver making it cannot pass.

func w(t *testing.T, c spi.Conn, b ...byte) []byte {
	t.Helper()
	r := make([]byte, len(b))
	if err := c.Tx(b, r); err != nil {
		t.Fatal(err)
	}
	return r
}

func has(vs []chipemu.Violation, code string) bool {
	for _, v := range vs {
		if v.Code == code {
			return true
		}
	}
	return false
}

// loraSX1276 puts an SX1276 in LoRa standby at 869.525 MHz, SF9/125k, the
// right way.
func loraSX1276(t *testing.T, c spi.Conn) {
	w(t, c, 0x81, 0x00)             // FSK sleep
	w(t, c, 0x81, 0x80)             // LoRa sleep
	w(t, c, 0x86, 0xD9, 0x61, 0x99) // Frf
	w(t, c, 0x9D, 0x72)             // BW 125k, CR 4/5
	w(t, c, 0x9E, 0x94)             // SF9, CRC
	w(t, c, 0x81, 0x81)             // standby
}

func TestSX1276CatchesLongRangeOutsideSleep(t *testing.T) {
	b := chipemu.NewBench(t0, radiosim.Config{}, 0)
	c := b.NewSX1276("a")
	w(t, c.SPI(), 0x81, 0x81) // straight from FSK standby to LoRa standby
	if !has(c.Violations(), chipemu.VLongRangeOutsideSleep) {
		t.Fatalf("not caught: %v", c.Violations())
	}
	if c.Reg(0x01)&0x80 != 0 {
		t.Error("LongRange changed outside sleep")
	}
	if r := w(t, c.SPI(), 0x42, 0); r[1] != 0x12 {
		t.Errorf("version 0x%02X", r[1])
	}
}

func TestSX1276CatchesMissingIrqClear(t *testing.T) {
	b := chipemu.NewBench(t0, radiosim.Config{}, 0)
	c := b.NewSX1276("a")
	s := c.SPI()
	loraSX1276(t, s)
	send := func() {
		w(t, s, 0x8E, 0)
		w(t, s, 0x8D, 0)
		w(t, s, 0x80, 'h', 'i')
		w(t, s, 0xA2, 2)
		w(t, s, 0xC0, 0x40)
		w(t, s, 0x81, 0x83)
		b.Clock.Advance(time.Second)
	}
	send()
	if c.DIO0.Read() != gpio.High {
		t.Fatal("DIO0 (TxDone) not raised")
	}
	if len(c.Violations()) != 0 {
		t.Fatalf("correct first TX flagged: %v", c.Violations())
	}
	send() // TxDone never cleared
	if !has(c.Violations(), chipemu.VIrqNotCleared) {
		t.Fatalf("not caught: %v", c.Violations())
	}
	w(t, s, 0x92, 0x08) // write 1 to clear
	if r := w(t, s, 0x12, 0); r[1]&0x08 != 0 || c.DIO0.Read() != gpio.Low {
		t.Errorf("TxDone not cleared by writing 1: flags 0x%02X", r[1])
	}
}

func TestSX1276CatchesFifoReadWithoutPointer(t *testing.T) {
	b := chipemu.NewBench(t0, radiosim.Config{}, 0)
	tx, rx := b.NewSX1276("tx"), b.NewSX1276("rx")
	loraSX1276(t, tx.SPI())
	loraSX1276(t, rx.SPI())
	w(t, rx.SPI(), 0xC0, 0x00) // DIO0 = RxDone
	w(t, rx.SPI(), 0x81, 0x85) // RX continuous
	s := tx.SPI()
	w(t, s, 0x8E, 0)
	w(t, s, 0x8D, 0)
	w(t, s, 0x80, 'o', 'k')
	w(t, s, 0xA2, 2)
	w(t, s, 0x81, 0x83)
	b.Clock.Advance(time.Second)
	if rx.DIO0.Read() != gpio.High {
		t.Fatal("RxDone not signalled on DIO0")
	}
	w(t, rx.SPI(), 0x00, 0, 0) // read the FIFO at whatever FifoAddrPtr is
	if !has(rx.Violations(), chipemu.VFifoPtrNotSet) {
		t.Fatalf("not caught: %v", rx.Violations())
	}
}

func TestSX1262CatchesCommandWhileBusy(t *testing.T) {
	b := chipemu.NewBench(t0, radiosim.Config{}, 0)
	c := b.NewSX1262("a", false, false)
	w(t, c.SPI(), 0x80, 0x00) // BUSY is still high from power-on
	if !has(c.Violations(), chipemu.VCommandWhileBusy) {
		t.Fatalf("not caught: %v", c.Violations())
	}
	b.Clock.Advance(10 * time.Millisecond)
	if c.Busy.Read() != gpio.Low {
		t.Fatal("BUSY still high after start-up")
	}
	w(t, c.SPI(), 0x89, 0x7F) // Calibrate: BUSY high for a while
	if c.Busy.Read() != gpio.High {
		t.Fatal("BUSY low while calibrating")
	}
	w(t, c.SPI(), 0x8A, 0x01)
	if n := len(c.Violations()); n != 2 {
		t.Errorf("%d violations, want 2: %v", n, c.Violations())
	}
}

func TestSX1262CatchesOrderAndUnknown(t *testing.T) {
	b := chipemu.NewBench(t0, radiosim.Config{}, 0)
	c := b.NewSX1262("a", false, false)
	step := func(cmd ...byte) []byte {
		b.Clock.Advance(10 * time.Millisecond)
		return w(t, c.SPI(), cmd...)
	}
	step(0x8B, 9, 0x04, 1, 0) // modulation before packet type
	step(0x77)                // no such opcode
	step(0x8A, 1, 0)          // wrong length
	for _, code := range []string{chipemu.VOrder, chipemu.VUnknownCommand, chipemu.VBadLength} {
		if !has(c.Violations(), code) {
			t.Errorf("%s not caught: %v", code, c.Violations())
		}
	}
	// Status byte on reads, errata registers accepted.
	step(0x0D, 0x08, 0x89, 0x04)
	if r := step(0x1D, 0x08, 0x89, 0, 0); r[3] != 0x20 || r[4] != 0x04 {
		t.Errorf("ReadRegister: % X, want status 0x20 then 0x04", r)
	}
}

func TestSX1262CatchesLDROAndRFSwitch(t *testing.T) {
	b := chipemu.NewBench(t0, radiosim.Config{}, 0)
	c := b.NewSX1262("a", false, true)
	for _, cmd := range [][]byte{
		{0x8A, 1}, {0x86, 0x36, 0x58, 0x00, 0x00}, {0x8B, 12, 0x04, 1, 0 /* LDRO off at SF12 */},
		{0x8C, 0, 8, 0, 4, 1, 0}, {0x0E, 0, 1, 2, 3, 4}, {0x83, 0, 0, 0},
	} {
		b.Clock.Advance(10 * time.Millisecond)
		w(t, c.SPI(), cmd...)
	}
	for _, code := range []string{chipemu.VLDRO, chipemu.VRFSwitch} {
		if !has(c.Violations(), code) {
			t.Errorf("%s not caught: %v", code, c.Violations())
		}
	}
}
