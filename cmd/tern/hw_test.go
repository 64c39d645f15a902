package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ternmesh/tern/hw"
	"github.com/ternmesh/tern/lora/chipemu"
	"github.com/ternmesh/tern/lora/radiosim"
)

func hwTestEnv(b *chipemu.Bench, o hw.Opener, ports ...string) hwEnv {
	return hwEnv{
		opener: func() (hw.Opener, error) { return o, nil },
		ports:  func() ([]string, error) { return ports, nil },
		now:    b.Now, sleep: b.Sleep,
	}
}

func runHWTest(t *testing.T, env hwEnv, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := runHW(context.Background(), args, &out, env)
	return out.String(), err
}

func TestHWList(t *testing.T) {
	b := chipemu.NewBench(time.Unix(0, 0), radiosim.Config{}, 0)
	out, err := runHWTest(t, hwTestEnv(b, chipemu.NewOpener()), "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"waveshare-sx1262", "busy=20", "irq=16", "adafruit-rfm9x", "SPI0.1", "reset=25",
		"dragino", "cs=25", "elecrow-rfm95", "waveshare-uart", "m0=22", "Serial ports: none found"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	out, _ = runHWTest(t, hwTestEnv(b, chipemu.NewOpener(), "/dev/ttyUSB0"), "list")
	if !strings.Contains(out, "/dev/ttyUSB0") {
		t.Errorf("serial port missing:\n%s", out)
	}
}

func TestHWProbeMessages(t *testing.T) {
	b := chipemu.NewBench(time.Unix(0, 0), radiosim.Config{}, 40)
	b.Start()
	defer b.Close()
	ada, _ := hw.Lookup("adafruit-rfm9x")
	ws, _ := hw.Lookup("waveshare-sx1262")

	// SPI disabled: no spidev for the board's port.
	_, err := runHWTest(t, hwTestEnv(b, chipemu.NewOpener()), "probe", "adafruit-rfm9x")
	if err == nil || !strings.Contains(err.Error(), "dtparam=spi=on in /boot/firmware/config.txt") {
		t.Errorf("SPI disabled: %v", err)
	}

	// A working RFM95 and SX1262.
	o := chipemu.NewOpener()
	b.NewSX1276("rfm").Attach(o, ada)
	b.NewBoardSX1262("ws", ws).Attach(o, ws)
	out, err := runHWTest(t, hwTestEnv(b, o), "probe", "adafruit-rfm9x")
	if err != nil || !strings.Contains(out, "found SX1276 (version 0x12)") {
		t.Errorf("probe rfm95: %v\n%s", err, out)
	}
	out, err = runHWTest(t, hwTestEnv(b, o), "probe", "waveshare-sx1262")
	if err != nil || !strings.Contains(out, "found SX126x") {
		t.Errorf("probe sx1262: %v\n%s", err, out)
	}

	// Wrong pin override: the IRQ pin does not exist on the opener.
	_, err = runHWTest(t, hwTestEnv(b, o), "probe", "adafruit-rfm9x?irq=5")
	if err == nil || !strings.Contains(err.Error(), "?irq=N") {
		t.Errorf("bad pin: %v", err)
	}

	// Unplugged HATs reading 0x00 and 0xFF.
	for _, v := range []byte{0x00, 0xFF} {
		o := chipemu.NewOpener()
		c := b.NewSX1276("gone")
		c.SetFaults(chipemu.Faults{Unplugged: true, UnpluggedByte: v})
		c.Attach(o, ada)
		_, err := runHWTest(t, hwTestEnv(b, o), "probe", "adafruit-rfm9x")
		if err == nil || !strings.Contains(err.Error(), "check the HAT is seated and the board name is right") {
			t.Errorf("unplugged 0x%02X: %v", v, err)
		}
		c2 := b.NewSX1262("gone62", false, false)
		c2.SetFaults(chipemu.Faults{Unplugged: true, UnpluggedByte: v})
		c2.Attach(o, ws)
		_, err = runHWTest(t, hwTestEnv(b, o), "probe", "waveshare-sx1262")
		if err == nil || !strings.Contains(err.Error(), "check the HAT is seated and the board name is right") {
			t.Errorf("unplugged sx1262 0x%02X: %v", v, err)
		}
	}

	// Unknown board names list the known ones.
	_, err = runHWTest(t, hwTestEnv(b, o), "probe", "lora-hat-9000")
	if err == nil || !strings.Contains(err.Error(), "waveshare-sx1262") {
		t.Errorf("unknown board: %v", err)
	}
	// Serial board: port missing.
	_, err = runHWTest(t, hwTestEnv(b, o), "probe", "waveshare-uart")
	if err == nil || !strings.Contains(err.Error(), "/dev/ttyS0 not found") {
		t.Errorf("serial board: %v", err)
	}
}
