package call

import (
	"time"
)

// Stats are a call's live figures, as the call page shows them. Receive
// figures are about the peer's audio arriving here.
type Stats struct {
	FramesSent     uint64 `json:"frames_sent"`     // sealed and handed to the router
	FramesReceived uint64 `json:"frames_received"` // authenticated frames from the peer
	// FramesLost counts the peer's frames that never arrived (gaps in the
	// sequence numbers since the first one received).
	FramesLost uint64 `json:"frames_lost"`
	// LossPercent is the share lost among the peer's last 256 frames
	// (about 5 s of audio).
	LossPercent float64 `json:"loss_percent"`
	// JitterMillis is the RFC 3550 interarrival jitter of the peer's frames.
	JitterMillis float64 `json:"jitter_ms"`
	// RTTMillis is the smoothed round trip between the two daemons, from
	// the echo fields of the frames; 0 until both sides have sent audio.
	RTTMillis float64 `json:"rtt_ms"`
	// LatencyMillis is the one-way network latency estimate, RTT/2.
	LatencyMillis float64 `json:"latency_ms"`
	// Refused counts frames dropped as duplicates, too old, or failing
	// authentication.
	Refused uint64 `json:"refused"`
	// DroppedLocal counts frames that arrived but found no media socket or
	// a full one (the page was not reading).
	DroppedLocal uint64 `json:"dropped_local"`
	// SendFailures counts frames the router could not send; SendProblem is
	// the latest reason (for example: no internet or LAN path any more).
	SendFailures uint64 `json:"send_failures"`
	SendProblem  string `json:"send_problem,omitempty"`
}

// rxState is the receive side's measurements; guarded by live.mu.
type rxState struct {
	received, refused, droppedLocal uint64
	jitterUs                        float64
	lastTransit                     int32
	haveTransit                     bool
	rttUs                           float64
	// The newest frame from the peer, echoed in ours for its RTT.
	peerSent   uint32
	peerSentAt time.Time
	havePeer   bool
	lastRx     time.Time
}

// observe updates the measurements for one authenticated frame that
// arrived at nowUs (this side's call clock).
func (r *rxState) observe(t frameTimes, newest bool, now time.Time, nowUs uint32) {
	r.received++
	r.lastRx = now
	transit := int32(nowUs - t.sent)
	if r.haveTransit {
		d := float64(transit - r.lastTransit)
		if d < 0 {
			d = -d
		}
		r.jitterUs += (d - r.jitterUs) / 16
	}
	r.lastTransit, r.haveTransit = transit, true
	if newest {
		r.peerSent, r.peerSentAt, r.havePeer = t.sent, now, true
	}
	if t.delay != noEcho {
		if rtt := int32(nowUs - t.echo - t.delay); rtt >= 0 && rtt < 10_000_000 {
			if r.rttUs == 0 {
				r.rttUs = float64(rtt)
			} else {
				r.rttUs += (float64(rtt) - r.rttUs) / 8
			}
		}
	}
}

// echo returns the echo fields for a frame sent at now.
func (r *rxState) echo(now time.Time) (echo, delay uint32) {
	if !r.havePeer {
		return 0, noEcho
	}
	d := now.Sub(r.peerSentAt).Microseconds()
	return r.peerSent, uint32(min(max(d, 0), noEcho-1))
}

func (r *rxState) stats(w *window) Stats {
	s := Stats{
		FramesReceived: r.received, Refused: r.refused, DroppedLocal: r.droppedLocal,
		JitterMillis: round2(r.jitterUs / 1000), RTTMillis: round2(r.rttUs / 1000), LatencyMillis: round2(r.rttUs / 2000),
	}
	if w.started {
		if expected := uint64(w.highest-w.first) + 1; expected > r.received {
			s.FramesLost = expected - r.received
		}
		s.LossPercent = round2(w.lossPercent())
	}
	return s
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
