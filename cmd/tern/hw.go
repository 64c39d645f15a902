package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"go.bug.st/serial"

	"github.com/ternmesh/tern/hw"
	"github.com/ternmesh/tern/lora/sx126x"
	"github.com/ternmesh/tern/lora/sx127x"
)

const hwUsage = `Usage:
  tern hw list                     known LoRa boards, their pins, and the serial ports found
  tern hw probe <board>[?pins]     open the board and read its chip, e.g.
                                   tern hw probe adafruit-rfm9x?reset=17&irq=4
`

// hwEnv is what `tern hw` touches on the machine; tests inject fakes.
type hwEnv struct {
	opener func() (hw.Opener, error)
	ports  func() ([]string, error)
	now    func() time.Time
	sleep  func(time.Duration)
}

// cmdHW runs `tern hw list` and `tern hw probe` on this machine's hardware.
func cmdHW(ctx context.Context, args []string, out io.Writer) error {
	return runHW(ctx, args, out, hwEnv{
		opener: func() (hw.Opener, error) { return hw.NewPeriph() },
		ports:  serial.GetPortsList,
		now:    time.Now,
		sleep:  time.Sleep,
	})
}

func runHW(ctx context.Context, args []string, out io.Writer, env hwEnv) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(out, hwUsage)
		return nil
	}
	switch args[0] {
	case "list":
		return hwList(out, env)
	case "probe":
		if len(args) != 2 {
			return fmt.Errorf("`tern hw probe` needs one board name: one of %v (see `tern hw list`)", hw.Names())
		}
		return hwProbe(ctx, args[1], out, env)
	}
	return fmt.Errorf("unknown `tern hw` subcommand %q: use list or probe", args[0])
}

func hwList(out io.Writer, env hwEnv) error {
	fmt.Fprintln(out, "Known boards (BCM GPIO numbers; override any pin with ?role=N):")
	for _, b := range hw.Boards() {
		fmt.Fprintf(out, "  %s\n      %s", b, b.Title)
		if b.Notes != "" {
			fmt.Fprintf(out, "; %s", b.Notes)
		}
		fmt.Fprintln(out)
	}
	ports, err := env.ports()
	if err != nil {
		fmt.Fprintf(out, "Serial ports: cannot list them: %v\n", err)
		return nil
	}
	slices.Sort(ports)
	if len(ports) == 0 {
		fmt.Fprintln(out, "Serial ports: none found")
		return nil
	}
	fmt.Fprintln(out, "Serial ports:")
	for _, p := range ports {
		fmt.Fprintf(out, "  %s\n", p)
	}
	return nil
}

func hwProbe(ctx context.Context, spec string, out io.Writer, env hwEnv) error {
	b, err := hw.Lookup(spec)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "board: %s\n", b)
	if b.Chip == hw.E22UART {
		ports, err := env.ports()
		if err != nil {
			return fmt.Errorf("list serial ports: %w", err)
		}
		if !slices.Contains(ports, b.Serial) {
			return fmt.Errorf("serial port %s not found (found %v): enable the UART with raspi-config (serial port on, login shell off) or override with ?serial=", b.Serial, ports)
		}
		fmt.Fprintf(out, "serial port %s present; the module answers only through its serial driver\n", b.Serial)
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	o, err := env.opener()
	if err != nil {
		return fmt.Errorf("probe %s: %w", b.Name, err)
	}
	h, err := hw.Open(b, o)
	if err != nil {
		return fmt.Errorf("probe %s: %w", b.Name, err) // names the fix: enable SPI, override a pin
	}
	defer h.Close()
	switch b.Chip {
	case hw.SX1276:
		v, err := sx127x.Probe(h.Conn, h.Reset, env.sleep)
		if err != nil {
			return fmt.Errorf("probe %s on %s: %w", b.Name, b.SPI, err)
		}
		fmt.Fprintf(out, "found SX1276 (version 0x%02X) on %s\n", v, b.SPI)
	case hw.SX1262:
		st, err := sx126x.Probe(h.Conn, h.Reset, h.Busy, env.now, env.sleep)
		if err != nil {
			return fmt.Errorf("probe %s on %s: %w", b.Name, b.SPI, err)
		}
		fmt.Fprintf(out, "found SX126x on %s (status: chip mode %d, command status %d)\n", b.SPI, st.Mode, st.Command)
	default:
		return fmt.Errorf("probe %s: chip %s has no SPI probe", b.Name, b.Chip)
	}
	return nil
}
