package files

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/message"
)

// sendWorkers is how many chunks of one transfer are sealed and stored at
// once, so their store writes are group-committed.
const sendWorkers = 4

// errRetry is how soon a pump tries again after a send failed.
const errRetry = 10 * time.Second

// silentRetry: a chunk the receiver has not answered about at all is sent
// again only after this many RetryAfter.
const silentRetry = 16

// Send offers the file read from src, called name, to every address in to
// (one contact; a group is its members) and returns one transfer per
// recipient. The content is copied into the outbox first (hashed on the
// way, never held in memory), so src may go away once Send returns; the
// transfers then go on by themselves, across restarts, until done.
func (s *Service) Send(to []crypto.Address, name string, src io.Reader, opt SendOptions) ([]Transfer, error) {
	if len(to) == 0 {
		return nil, errors.New("no recipient: name a contact")
	}
	batch, err := opt.batch(s.cfg.Rand)
	if err != nil {
		return nil, err
	}
	name, err = CleanName(name)
	if err != nil {
		return nil, err
	}
	if err := checkMime(opt.Mime); err != nil {
		opt.Mime = ""
	}
	content, sum, size, err := s.stage(src)
	if err != nil {
		return nil, err
	}
	chunk := uint32(s.cfg.ChunkSize)
	n := chunkCount(uint64(size), chunk)
	if n > 1<<32-1 {
		return nil, fmt.Errorf("file of %d bytes needs more than 2^32 chunks", size)
	}
	var out []Transfer
	var ts []*transfer
	now := s.cfg.Now().UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("files: the node is shutting down")
	}
	for _, addr := range to {
		var id [16]byte
		if _, err := io.ReadFull(s.cfg.Rand, id[:]); err != nil {
			return nil, err
		}
		t := &transfer{key: id, wake: make(chan struct{}, 1), rec: record{
			Wire: id, Peer: addr, Name: name, Mime: opt.Mime, Size: uint64(size), SHA256: sum,
			ChunkSize: chunk, Chunks: uint32(n), State: StateQueued, OverRadio: opt.OverRadio,
			Created: now, Content: content, Flights: map[int64]flight{},
			groupRecord: opt.record(batch),
		}}
		if err := s.save(t); err != nil {
			return nil, fmt.Errorf("saving the transfer to %s: %w", addr.Short(), err)
		}
		s.transfers[id] = t
		ts = append(ts, t)
		out = append(out, s.view(t))
	}
	for _, t := range ts {
		s.start(t)
	}
	return out, nil
}

// stage copies src into the outbox under its SHA-256 and returns the
// outbox name, the hash and the size. It refuses files over MaxSize.
func (s *Service) stage(src io.Reader) (string, [32]byte, int64, error) {
	dir := outboxDir(s.cfg.Dir)
	tmp, err := os.CreateTemp(dir, "upload-*.tmp")
	if err != nil {
		return "", [32]byte{}, 0, fmt.Errorf("files: cannot stage the file in %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(src, s.cfg.MaxSize+1))
	if err != nil {
		return "", [32]byte{}, 0, fmt.Errorf("reading the file: %w", err)
	}
	if n > s.cfg.MaxSize {
		return "", [32]byte{}, 0, fmt.Errorf("the file is larger than %d bytes, the most this node sends (MaxSize)", s.cfg.MaxSize)
	}
	if err := tmp.Sync(); err != nil {
		return "", [32]byte{}, 0, fmt.Errorf("files: saving the file: %w", err)
	}
	sum := [32]byte(h.Sum(nil))
	name := hex.EncodeToString(sum[:])
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return "", [32]byte{}, 0, fmt.Errorf("files: saving the file: %w", err)
	}
	return name, sum, n, syncDir(dir)
}

// pump sends what an outgoing transfer needs until it is final.
func (s *Service) pump(t *transfer) {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.wake:
		case <-timer.C:
		}
		next, final := s.pumpOnce(t)
		if final {
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if !next.IsZero() {
			timer.Reset(max(next.Sub(s.cfg.Now()), time.Millisecond))
		}
	}
}

// sendJob is one message the pump sends: the offer (index -1) or a chunk.
type sendJob struct {
	index  int64
	resend bool
	id     bundle.ID
	err    error
}

// pumpOnce sends the offer or the chunks due and returns when to look
// again (zero: when woken).
func (s *Service) pumpOnce(t *transfer) (next time.Time, final bool) {
	t.mu.Lock()
	r := &t.rec
	if r.final() {
		t.mu.Unlock()
		return time.Time{}, true
	}
	now := s.cfg.Now()
	var jobs []*sendJob
	due := func(f flight) time.Time {
		d := s.cfg.RetryAfter
		for i := 1; i < f.Attempts && d < time.Hour; i++ {
			d *= 2
		}
		return time.UnixMilli(f.Sent).Add(min(d, time.Hour))
	}
	// check returns whether a flight must be sent again: it is overdue, no
	// longer in this node's store (custody would carry it otherwise) and,
	// for a chunk, either the receiver has answered since without it or
	// it has been silent for silentRetry (a receiver that is offline while
	// a relay holds the chunks gets no duplicates piling up there).
	check := func(f *flight, chunk bool) bool {
		at := due(*f)
		if chunk && r.LastAck < f.Sent {
			at = latest(at, time.UnixMilli(f.Sent).Add(s.cfg.RetryAfter*silentRetry))
		}
		if now.Before(at) {
			next = earliest(next, at)
			return false
		}
		if _, err := s.cfg.Store.Get(f.Bundle); err == nil {
			f.Sent = now.UnixMilli() // still waiting here for a path
			next = earliest(next, due(*f))
			return false
		}
		return true
	}
	if !r.Accepted {
		if r.Offer == nil || check(r.Offer, false) {
			jobs = append(jobs, &sendJob{index: -1, resend: r.Offer != nil})
		}
	} else {
		for i, f := range r.Flights {
			if check(&f, true) {
				delete(r.Flights, i)
				jobs = append(jobs, &sendJob{index: i, resend: true})
				continue
			}
			r.Flights[i] = f
		}
		free := s.cfg.Window - len(r.Flights) - len(jobs)
		for i := int64(0); free > 0 && i < int64(r.Chunks); i++ {
			if r.Have.Has(uint32(i)) {
				continue
			}
			if _, ok := r.Flights[i]; ok || containsJob(jobs, i) {
				continue
			}
			jobs = append(jobs, &sendJob{index: i})
			free--
		}
	}
	peer, bulk, offer := r.Peer, !r.OverRadio, s.offerOf(r)
	if t.file == nil && len(jobs) > 0 && r.Accepted {
		f, err := os.Open(filepath.Join(outboxDir(s.cfg.Dir), r.Content))
		if err != nil {
			s.failOutgoing(t, fmt.Sprintf("the file to send is gone from the outbox (%v): send it again", err))
			t.mu.Unlock()
			return time.Time{}, true
		}
		t.file = f
	}
	src := t.file
	if len(jobs) == 0 {
		if t.dirty {
			s.saveProgress(t)
		}
		t.mu.Unlock()
		return next, false
	}
	t.mu.Unlock()

	var wg sync.WaitGroup
	work := make(chan *sendJob)
	for range min(sendWorkers, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, offer.ChunkSize)
			for j := range work {
				j.id, j.err = s.sendOne(peer, offer, src, j.index, bulk, buf)
			}
		}()
	}
	for _, j := range jobs {
		work <- j
	}
	close(work)
	wg.Wait()

	t.mu.Lock()
	defer t.mu.Unlock()
	if r.final() {
		return time.Time{}, true
	}
	var firstErr error
	now = s.cfg.Now()
	for _, j := range jobs {
		if j.err != nil {
			firstErr = cmpErr(firstErr, j.err)
			continue
		}
		f := flight{Bundle: j.id, Sent: now.UnixMilli(), Attempts: 1}
		if j.index < 0 {
			if r.Offer != nil {
				f.Attempts = r.Offer.Attempts + 1
			}
			r.Offer = &f
		} else if !r.Have.Has(uint32(j.index)) {
			if j.resend {
				r.Resent++
			}
			r.Flights[j.index] = f
		}
		next = earliest(next, due(f))
	}
	s.saveProgress(t)
	if firstErr != nil {
		s.log.Warn("file send failed; will retry", "transfer", hex.EncodeToString(t.key[:]), "to", peer.Short(), "err", firstErr)
		return earliest(next, now.Add(errRetry)), false
	}
	return next, false
}

// saveProgress saves an outgoing transfer's record; call with t.mu held.
func (s *Service) saveProgress(t *transfer) {
	if err := s.save(t); err != nil {
		s.log.Error("saving transfer progress failed", "transfer", hex.EncodeToString(t.key[:]), "err", err)
		return
	}
	t.dirty = false
}

// resume asks the receiver of a transfer under way what it holds, by
// offering again: its ack then lists every chunk it has, including those
// acknowledged before a crash and not yet saved here.
func (s *Service) resume(t *transfer) {
	t.mu.Lock()
	r := &t.rec
	if r.Incoming || r.final() || !r.Accepted {
		t.mu.Unlock()
		return
	}
	o := s.offerOf(r)
	t.mu.Unlock()
	if _, err := s.sendOne(r.Peer, o, nil, -1, false, nil); err != nil {
		s.log.Warn("cannot ask the receiver where a transfer stands", "to", r.Peer.Short(), "err", err)
	}
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func containsJob(jobs []*sendJob, i int64) bool {
	for _, j := range jobs {
		if j.index == i {
			return true
		}
	}
	return false
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

func (s *Service) offerOf(r *record) Offer {
	o := Offer{ID: r.Wire, Size: r.Size, SHA256: r.SHA256, ChunkSize: r.ChunkSize, Chunks: r.Chunks, Name: r.Name, Mime: r.Mime}
	if len(r.Group) == len(o.Group) {
		o.Group, o.GroupEpoch = [16]byte(r.Group), r.GroupEpoch
	}
	return o
}

// sendOne seals and queues the offer (index -1) or chunk index.
func (s *Service) sendOne(to crypto.Address, o Offer, src *os.File, index int64, bulk bool, buf []byte) (bundle.ID, error) {
	var data []byte
	var err error
	opt := chat.SendOptions{}
	if index < 0 {
		data, err = o.Marshal()
	} else {
		off := index * int64(o.ChunkSize)
		n := min(int64(o.ChunkSize), int64(o.Size)-off)
		if _, err := src.ReadAt(buf[:n], off); err != nil {
			return bundle.ID{}, fmt.Errorf("reading chunk %d of the outbox file: %w", index, err)
		}
		c := Chunk{ID: o.ID, Index: uint32(index), Data: buf[:n]}
		data, err = c.Marshal()
		opt.Bulk = bulk
	}
	if err != nil {
		return bundle.ID{}, err
	}
	b, err := s.cfg.Messenger.SendMessage(to, &message.Message{Type: message.File, Data: data}, opt)
	if err != nil {
		return bundle.ID{}, err
	}
	return b.ID, nil
}

// onAck applies the receiver's ack to an outgoing transfer.
func (s *Service) onAck(t *transfer, a *Ack) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := &t.rec
	if r.final() {
		return
	}
	before := r.State
	switch a.Status {
	case AckReceiving:
		r.LastAck = s.cfg.Now().UnixMilli()
		if !a.Have.Within(r.Chunks) {
			s.log.Warn("ack names chunks past the end of the file; ignored", "transfer", hex.EncodeToString(t.key[:]), "chunks", r.Chunks)
			return
		}
		r.Accepted, r.Offer = true, nil
		r.State = StateSending
		r.Have = r.Have.Union(a.Have)
		for i := range r.Flights {
			if r.Have.Has(uint32(i)) {
				delete(r.Flights, i)
			}
		}
		if r.Have.Count() == uint64(r.Chunks) && r.Chunks > 0 {
			// Everything is there; the receiver's final ack follows
			// once it has checked the file.
			r.Flights = map[int64]flight{}
		}
	case AckComplete:
		r.State, r.Have, r.Flights, r.Offer = StateDone, Set{{0, r.Chunks}}, nil, nil
		if r.Chunks == 0 {
			r.Have = nil
		}
	case AckRefused:
		r.State, r.Error, r.Flights, r.Offer = StateFailed, "refused by the receiver: "+a.Reason, nil, nil
	}
	// Progress is saved by the pump's next round (one write per round, not
	// per ack); a state change is saved now. Progress lost in a crash is
	// asked for again by the resume offer (see resume).
	if before != r.State {
		if err := s.save(t); err != nil {
			s.log.Error("saving transfer progress failed", "transfer", hex.EncodeToString(t.key[:]), "err", err)
		}
	} else {
		t.dirty = true
	}
	if r.final() {
		s.releaseLocked(t)
	}
	s.changed(t, before != r.State)
	poke(t.wake)
}

// failOutgoing ends an outgoing transfer with an error; call with t.mu held.
func (s *Service) failOutgoing(t *transfer, why string) {
	t.rec.State, t.rec.Error = StateFailed, why
	t.rec.Flights, t.rec.Offer = nil, nil
	if err := s.save(t); err != nil {
		s.log.Error("saving transfer failed", "err", err)
	}
	s.releaseLocked(t)
	s.changed(t, true)
}

// cancelOutgoing stops an outgoing transfer, drops its chunks still held
// here and tells the receiver; call with t.mu held.
func (s *Service) cancelOutgoing(t *transfer, why string) {
	r := &t.rec
	var held []bundle.ID
	for _, f := range r.Flights {
		held = append(held, f.Bundle)
	}
	if r.Offer != nil {
		held = append(held, r.Offer.Bundle)
	}
	accepted := r.Accepted || r.Offer != nil
	r.State, r.Error, r.Flights, r.Offer = StateCancelled, "cancelled here", nil, nil
	if err := s.save(t); err != nil {
		s.log.Error("saving cancelled transfer failed", "err", err)
	}
	if len(held) > 0 {
		if err := s.cfg.Store.Delete(held...); err != nil {
			s.log.Warn("dropping the chunks of a cancelled transfer failed", "err", err)
		}
	}
	if accepted {
		data, _ := (&Cancel{ID: r.Wire, Reason: why}).Marshal()
		if _, err := s.cfg.Messenger.SendMessage(r.Peer, &message.Message{Type: message.File, Data: data}, chat.SendOptions{}); err != nil {
			s.log.Warn("cannot tell the receiver about the cancellation", "to", r.Peer.Short(), "err", err)
		}
	}
	s.releaseLocked(t)
	s.changed(t, true)
	poke(t.wake)
}

// releaseLocked closes t's outbox file and removes it once no other
// outgoing transfer under way needs it. Call with t.mu held.
func (s *Service) releaseLocked(t *transfer) {
	if t.file != nil {
		t.file.Close()
		t.file = nil
	}
	content := t.rec.Content
	if content == "" {
		return
	}
	go func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, o := range s.transfers {
			if o == t {
				continue
			}
			o.mu.Lock()
			busy := !o.rec.Incoming && !o.rec.final() && o.rec.Content == content
			o.mu.Unlock()
			if busy {
				return
			}
		}
		os.Remove(filepath.Join(outboxDir(s.cfg.Dir), content))
	}()
}

// SetOverRadio lets an outgoing transfer cross radio links from now on:
// chunks held here as bulk data are dropped and sent again without the
// bulk flag.
func (s *Service) SetOverRadio(id string) (Transfer, error) {
	t, err := s.lookup(id)
	if err != nil {
		return Transfer{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r := &t.rec
	if r.Incoming || r.final() {
		return s.view(t), fmt.Errorf("transfer %s is not a file being sent", id)
	}
	if r.OverRadio {
		return s.view(t), nil
	}
	r.OverRadio = true
	var held []bundle.ID
	for i, f := range r.Flights {
		if _, err := s.cfg.Store.Get(f.Bundle); err == nil {
			held = append(held, f.Bundle)
			delete(r.Flights, i)
		}
	}
	if err := s.save(t); err != nil {
		return s.view(t), err
	}
	if len(held) > 0 {
		if err := s.cfg.Store.Delete(held...); err != nil {
			s.log.Warn("dropping held chunks failed", "err", err)
		}
	}
	s.changed(t, true)
	poke(t.wake)
	return s.view(t), nil
}
