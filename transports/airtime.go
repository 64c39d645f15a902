package transports

import "time"

// AirtimeEstimator is an optional capability of radio links: how long
// sending n bytes of router frames to the neighbour would occupy the
// channel, fragmentation and link framing included, repairs and waiting for
// the regional duty cycle not. The router uses it to tell a user what a
// file held off radio would cost (see bundle.FlagBulk).
type AirtimeEstimator interface {
	EstimateAirtime(n int64) time.Duration
}
