// Package hw knows the Raspberry Pi LoRa boards Tern supports: which chip
// each carries, which SPI port and BCM GPIO pins it uses, and whether the
// chip needs a TCXO or drives its RF switch itself. It opens a board's SPI
// port and pins through an Opener: production uses periph.io's host drivers
// (NewPeriph), tests inject emulated chips.
//
// A board is named by a string such as "waveshare-sx1262"; any pin can be
// overridden with URL query parameters, e.g. "adafruit-rfm9x?reset=17&irq=4"
// or "dragino?spi=SPI0.1", because HAT clones and the Pi 5 move things around.
package hw

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Chip is the radio chip family on a board.
type Chip string

// Chip families.
const (
	SX1276  Chip = "sx1276"   // SX1276/77/78/79, RFM95/96/98: register interface
	SX1262  Chip = "sx1262"   // SX1262/SX1268: command interface with BUSY
	E22UART Chip = "e22-uart" // Ebyte E22-style module behind a UART (M0/M1 mode pins)
)

// Pin roles used in Board.Pins and as query parameter names.
const (
	PinCS    = "cs"    // chip select driven by hand (not a hardware CE line)
	PinReset = "reset" // chip reset (active low)
	PinIRQ   = "irq"   // interrupt line: DIO0 on SX127x, DIO1 on SX126x
	PinBusy  = "busy"  // SX126x BUSY
	PinDIO1  = "dio1"
	PinDIO2  = "dio2"
	PinAntSW = "ant_sw" // antenna switch enable
	PinM0    = "m0"     // E22 mode pins
	PinM1    = "m1"
)

// Board describes one known board. Pins are BCM GPIO numbers by role.
type Board struct {
	Name  string // lookup name, e.g. "waveshare-sx1262"
	Title string // human name
	Chip  Chip
	// SPI is the periph SPI port ("SPI0.0" uses CE0, "SPI0.1" CE1); empty
	// for serial boards. Boards with a PinCS entry drive CS by hand and
	// leave the hardware CE line unconnected.
	SPI string
	// Serial is the UART device of serial boards.
	Serial string
	Pins   map[string]int
	// TCXOVolts is the TCXO supply the SX126x must provide on DIO3 (0: the
	// board has a crystal). [unverified] for the Waveshare HAT: override with
	// ?tcxo=0 or ?tcxo=1.8 if calibration fails.
	TCXOVolts float64
	// DIO2RFSwitch says the SX126x must drive the RF switch from DIO2.
	DIO2RFSwitch bool
	Notes        string
}

// Pin returns the BCM number of a role and whether the board has it.
func (b Board) Pin(role string) (int, bool) {
	n, ok := b.Pins[role]
	return n, ok
}

// Boards returns the known boards, sorted by name. The slice and its maps
// are fresh copies.
func Boards() []Board {
	list := []Board{
		{Name: "waveshare-sx1262", Title: "Waveshare SX1262 LoRaWAN/GNSS HAT", Chip: SX1262, SPI: "SPI0.0",
			Pins:      map[string]int{PinCS: 21, PinReset: 18, PinIRQ: 16, PinBusy: 20, PinAntSW: 6},
			TCXOVolts: 1.8, DIO2RFSwitch: true,
			Notes: "CS is GPIO21 driven by hand; DIO2 switches the antenna"},
		{Name: "adafruit-rfm9x", Title: "Adafruit RFM9x (SX1276) Bonnet", Chip: SX1276, SPI: "SPI0.1",
			Pins: map[string]int{PinReset: 25, PinIRQ: 22}},
		{Name: "elecrow-rfm95", Title: "Elecrow LoRa RFM95 IoT board", Chip: SX1276, SPI: "SPI0.1",
			Pins: map[string]int{PinReset: 22, PinIRQ: 25}},
		{Name: "dragino", Title: "Dragino LoRa/GPS HAT (SX1276)", Chip: SX1276, SPI: "SPI0.0",
			Pins:  map[string]int{PinCS: 25, PinReset: 17, PinIRQ: 4, PinDIO1: 23, PinDIO2: 24},
			Notes: "CS is GPIO25 driven by hand"},
		{Name: "waveshare-uart", Title: "Waveshare SX1262/SX1268 LoRa HAT (UART, E22-style)", Chip: E22UART,
			Serial: "/dev/ttyS0", Pins: map[string]int{PinM0: 22, PinM1: 27},
			Notes: "serial module: use the E22 driver, not SPI"},
	}
	slices.SortFunc(list, func(a, b Board) int { return strings.Compare(a.Name, b.Name) })
	return list
}

// Names returns the known board names, sorted.
func Names() []string {
	var out []string
	for _, b := range Boards() {
		out = append(out, b.Name)
	}
	return out
}

// Lookup parses "name" or "name?role=N&spi=SPI0.1&tcxo=1.8&serial=/dev/ttyAMA0"
// and returns the board with the overrides applied. Names are
// case-insensitive. A pin set to -1 (or "none") is removed.
func Lookup(spec string) (Board, error) {
	name, query, _ := strings.Cut(spec, "?")
	name = strings.ToLower(strings.TrimSpace(name))
	var b Board
	found := false
	for _, c := range Boards() {
		if c.Name == name {
			b, found = c, true
		}
	}
	if !found {
		return Board{}, fmt.Errorf("unknown board %q: known boards are %s (pins can be overridden, e.g. adafruit-rfm9x?reset=17&irq=4)",
			name, strings.Join(Names(), ", "))
	}
	if query == "" {
		return b, nil
	}
	vals, err := url.ParseQuery(query)
	if err != nil {
		return Board{}, fmt.Errorf("board %q: bad overrides %q: %w (write them like ?reset=17&irq=4)", name, query, err)
	}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := vals.Get(k)
		switch k {
		case "spi":
			b.SPI = v
		case "serial":
			b.Serial = v
		case "tcxo":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 3.3 {
				return Board{}, fmt.Errorf("board %q: tcxo=%q: give the TCXO voltage in volts (0 for none, e.g. 1.8)", name, v)
			}
			b.TCXOVolts = f
		case "rfswitch":
			on, err := strconv.ParseBool(v)
			if err != nil {
				return Board{}, fmt.Errorf("board %q: rfswitch=%q: use true or false", name, v)
			}
			b.DIO2RFSwitch = on
		case PinCS, PinReset, PinIRQ, PinBusy, PinDIO1, PinDIO2, PinAntSW, PinM0, PinM1:
			if v == "none" || v == "-1" {
				delete(b.Pins, k)
				continue
			}
			n, err := strconv.Atoi(strings.TrimPrefix(strings.ToUpper(v), "GPIO"))
			if err != nil || n < 0 || n > 63 {
				return Board{}, fmt.Errorf("board %q: %s=%q: give a BCM GPIO number 0..63 (or none)", name, k, v)
			}
			b.Pins[k] = n
		default:
			return Board{}, fmt.Errorf("board %q: unknown override %q: use one of spi, serial, tcxo, rfswitch, %s",
				name, k, strings.Join([]string{PinCS, PinReset, PinIRQ, PinBusy, PinDIO1, PinDIO2, PinAntSW, PinM0, PinM1}, ", "))
		}
	}
	return b, nil
}

// String formats the board and its pins on one line.
func (b Board) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-18s %-8s", b.Name, b.Chip)
	if b.SPI != "" {
		fmt.Fprintf(&sb, " %s", b.SPI)
	}
	if b.Serial != "" {
		fmt.Fprintf(&sb, " %s", b.Serial)
	}
	roles := make([]string, 0, len(b.Pins))
	for r := range b.Pins {
		roles = append(roles, r)
	}
	slices.Sort(roles)
	for _, r := range roles {
		fmt.Fprintf(&sb, " %s=%d", r, b.Pins[r])
	}
	if b.TCXOVolts > 0 {
		fmt.Fprintf(&sb, " tcxo=%.1fV", b.TCXOVolts)
	}
	if b.DIO2RFSwitch {
		sb.WriteString(" rfswitch=dio2")
	}
	return sb.String()
}
