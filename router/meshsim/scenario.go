// Package meshsim is a deterministic, discrete-event mesh simulator for
// Tern's routing. It runs hundreds or thousands of nodes in virtual time
// over mixed links (internet QUIC between gateways, LAN islands, LoRa with
// exact time on air, duty-cycle budgets, collisions and loss, scheduled
// contacts between passing nodes, nodes that come and go) and compares
// Tern's routing (package router/policy) with plain flooding and epidemic
// forwarding on the same scenario and seed.
//
// A run is a single goroutine and draws every random number from one PCG
// seeded by the scenario: the same scenario and seed give the same report.
package meshsim

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"time"
)

// Dur is a time.Duration written as "90s" or "6h" in scenario files.
type Dur time.Duration

// UnmarshalJSON reads a Go duration string.
func (d *Dur) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"90s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Dur(v)
	return nil
}

// MarshalJSON writes a Go duration string.
func (d Dur) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Scenario describes a city-like mesh. Nodes are placed at random in a
// square area: LoRa relays (always on, on roofs), internet gateways (on
// the internet, in a LAN island and on LoRa), LAN islands (a building's
// Wi-Fi: members fully meshed), and handhelds (some with LoRa) that meet
// each other in passing (scheduled contacts) and come and go (churn).
type Scenario struct {
	Name     string  `json:"name"`
	Seed     uint64  `json:"seed"`
	Nodes    int     `json:"nodes"`
	Duration Dur     `json:"duration"`
	AreaKm   float64 `json:"area_km"`

	LoRaRelays      int     `json:"lora_relays"`
	RelayRangeKm    float64 `json:"relay_range_km"`
	HandheldLoRa    float64 `json:"handheld_lora"` // fraction of handhelds with a radio
	HandheldRangeKm float64 `json:"handheld_range_km"`
	LoRaPreset      string  `json:"lora_preset"`
	DutyCycle       float64 `json:"duty_cycle"`
	LoRaLoss        float64 `json:"lora_loss"`

	Gateways   int `json:"gateways"`
	LANIslands int `json:"lan_islands"`
	IslandSize int `json:"island_size"`

	ChurnFraction float64 `json:"churn_fraction"`
	MeanUp        Dur     `json:"mean_up"`
	MeanDown      Dur     `json:"mean_down"`

	ContactsPerHour float64 `json:"contacts_per_hour"` // per handheld
	ContactLength   Dur     `json:"contact_length"`

	Messages     int     `json:"messages"`
	BulkFraction float64 `json:"bulk_fraction"`
	TextBytes    int     `json:"text_bytes"`
	BulkBytes    int     `json:"bulk_bytes"`
	Lifetime     Dur     `json:"lifetime"`
	StorageLimit int     `json:"storage_limit"` // bundles per node

	Liars          int     `json:"liars"`
	LiarsOnLAN     int     `json:"liars_on_lan"` // how many of the liars are also on a LAN island
	LiarJunkPerMin float64 `json:"liar_junk_per_min"`
}

// Load reads a scenario file (JSON).
func Load(path string) (Scenario, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Scenario{}, fmt.Errorf("reading scenario: %w", err)
	}
	var s Scenario
	if err := json.Unmarshal(raw, &s); err != nil {
		return Scenario{}, fmt.Errorf("scenario %s is not valid JSON for a meshsim scenario: %w", path, err)
	}
	return s, s.Validate()
}

func (s *Scenario) defaults() {
	set := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	setD := func(v *Dur, d time.Duration) {
		if *v == 0 {
			*v = Dur(d)
		}
	}
	set(&s.AreaKm, 8)
	set(&s.RelayRangeKm, 3)
	set(&s.HandheldRangeKm, 1)
	set(&s.DutyCycle, 0.1)
	setD(&s.Duration, 6*time.Hour)
	setD(&s.MeanUp, time.Hour)
	setD(&s.MeanDown, 30*time.Minute)
	setD(&s.ContactLength, 5*time.Minute)
	setD(&s.Lifetime, 6*time.Hour)
	if s.LoRaPreset == "" {
		s.LoRaPreset = "MediumFast"
	}
	if s.TextBytes == 0 {
		s.TextBytes = 90
	}
	if s.BulkBytes == 0 {
		s.BulkBytes = 8000
	}
	if s.StorageLimit == 0 {
		s.StorageLimit = 2000
	}
}

// Validate checks the scenario and names what is wrong.
func (s *Scenario) Validate() error {
	s.defaults()
	switch {
	case s.Nodes < 2:
		return fmt.Errorf("scenario %q: nodes is %d; a mesh needs at least 2", s.Name, s.Nodes)
	case s.LoRaRelays+s.Gateways+s.LANIslands*s.IslandSize+s.Liars > s.Nodes:
		return fmt.Errorf("scenario %q: relays+gateways+islands*island_size+liars = %d exceeds nodes %d", s.Name,
			s.LoRaRelays+s.Gateways+s.LANIslands*s.IslandSize+s.Liars, s.Nodes)
	case s.DutyCycle <= 0 || s.DutyCycle > 1:
		return fmt.Errorf("scenario %q: duty_cycle %g must be in (0,1]", s.Name, s.DutyCycle)
	case s.Gateways > s.LANIslands && s.LANIslands > 0:
		return fmt.Errorf("scenario %q: %d gateways but only %d LAN islands to put them in", s.Name, s.Gateways, s.LANIslands)
	case math.IsNaN(s.AreaKm) || s.AreaKm <= 0:
		return fmt.Errorf("scenario %q: area_km must be positive", s.Name)
	}
	return nil
}

// role of a node in the scenario.
type role uint8

const (
	roleHandheld role = iota
	roleRelay
	roleGateway
	roleIsland
	roleLiar
)

type placed struct {
	x, y   float64
	role   role
	island int // -1: none
	lora   float64
	churns bool
}

// layout places the nodes deterministically.
func (s *Scenario) layout(rng *rand.Rand) []placed {
	ps := make([]placed, s.Nodes)
	centres := make([][2]float64, s.LANIslands)
	for i := range centres {
		centres[i] = [2]float64{rng.Float64() * s.AreaKm, rng.Float64() * s.AreaKm}
	}
	i := 0
	next := func(r role, island int, lora float64) {
		p := placed{x: rng.Float64() * s.AreaKm, y: rng.Float64() * s.AreaKm, role: r, island: island, lora: lora}
		if island >= 0 {
			p.x = centres[island][0] + rng.Float64()*0.2
			p.y = centres[island][1] + rng.Float64()*0.2
		}
		ps[i] = p
		i++
	}
	for range s.LoRaRelays {
		next(roleRelay, -1, s.RelayRangeKm)
	}
	for g := range s.Gateways {
		next(roleGateway, g, s.RelayRangeKm)
	}
	for isl := range s.LANIslands {
		start := 0
		if isl < s.Gateways {
			start = 1
		}
		for range s.IslandSize - start {
			lora := 0.0
			if rng.Float64() < s.HandheldLoRa {
				lora = s.HandheldRangeKm
			}
			next(roleIsland, isl, lora)
		}
	}
	for k := range s.Liars {
		// Liars have a relay's radio; with liars_on_lan the first ones
		// also sit inside a building's LAN (island k), a compromised
		// node that can lie and flood over both media.
		island := -1
		if k < s.LiarsOnLAN && s.LANIslands > 0 {
			island = k % s.LANIslands
		}
		next(roleLiar, island, s.RelayRangeKm)
	}
	for i < s.Nodes {
		lora := 0.0
		if rng.Float64() < s.HandheldLoRa {
			lora = s.HandheldRangeKm
		}
		next(roleHandheld, -1, lora)
	}
	for k := range ps {
		if ps[k].role == roleHandheld || ps[k].role == roleIsland {
			ps[k].churns = rng.Float64() < s.ChurnFraction
		}
	}
	return ps
}
