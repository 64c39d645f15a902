package files

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ternmesh/tern/chat"
	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/message"
	"github.com/ternmesh/tern/router"
)

// Receive implements chat.Handler for message.File. It is idempotent, and
// returns only once what it keeps is on disk (a chunk and the record that
// says it is held).
func (s *Service) Receive(in chat.Incoming) error {
	if s.ctx.Err() != nil {
		return errors.New("files: shutting down; the message is delivered after the restart")
	}
	if in.Clear {
		return router.Reject("clear-file", fmt.Errorf("file message from %s travelled unencrypted: files only travel sealed", in.From.Short()))
	}
	p, err := Decode(in.Message.Data)
	if err != nil {
		return router.Reject("malformed", fmt.Errorf("file message from %s: %w", in.From.Short(), err))
	}
	switch p := p.(type) {
	case *Offer:
		return s.onOffer(in.From, p)
	case *Chunk:
		t := s.get(localKey(in.From, p.ID))
		if t == nil {
			s.refuse(in.From, p.ID, "this node has no offer for the transfer (its state was lost?): send the file again")
			return router.Reject("unknown-transfer", fmt.Errorf("chunk %d of an unknown transfer %x from %s", p.Index, p.ID[:4], in.From.Short()))
		}
		return s.onChunk(t, p)
	case *Ack:
		t := s.get(p.ID)
		if t == nil || t.rec.Incoming || t.rec.Peer != in.From {
			return router.Reject("unknown-transfer", fmt.Errorf("ack for a transfer %x this node did not send to %s", p.ID[:4], in.From.Short()))
		}
		s.onAck(t, p)
		return nil
	case *Cancel:
		t := s.get(localKey(in.From, p.ID))
		if t == nil {
			return nil
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		if !t.rec.final() {
			why := "the sender cancelled the transfer"
			if p.Reason != "" && !strings.Contains(p.Reason, "cancelled") {
				why += ": " + p.Reason
			}
			s.endIncoming(t, StateCancelled, why, "")
		}
		return nil
	}
	return nil
}

// localKey is the local ID of an incoming transfer: distinct per sender,
// so one sender cannot touch another's transfer by reusing its ID.
func localKey(from crypto.Address, wire [16]byte) [16]byte {
	h := sha256.New()
	h.Write([]byte("tern/files/in"))
	h.Write(from[:])
	h.Write(wire[:])
	return [16]byte(h.Sum(nil))
}

func (s *Service) get(key [16]byte) *transfer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.transfers[key]
}

func (s *Service) partialPath(key [16]byte) string {
	return filepath.Join(partialDir(s.cfg.Dir), hex.EncodeToString(key[:])+".part")
}

// onOffer records a new incoming transfer (or answers a repeated offer).
func (s *Service) onOffer(from crypto.Address, o *Offer) error {
	key := localKey(from, o.ID)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("files: shutting down")
	}
	t := s.transfers[key]
	if t != nil {
		s.mu.Unlock()
		t.mu.Lock()
		same := t.rec.Size == o.Size && t.rec.SHA256 == o.SHA256 && t.rec.ChunkSize == o.ChunkSize && t.rec.sameGroup(o)
		final := t.rec.final()
		t.mu.Unlock()
		if !same {
			return router.Reject("conflicting-offer", fmt.Errorf("offer %x from %s differs from the one received before", o.ID[:4], from.Short()))
		}
		if final {
			s.sendAck(t)
		} else {
			poke(t.wake)
		}
		return nil
	}
	if o.Size > uint64(s.cfg.MaxSize) {
		s.mu.Unlock()
		s.refuse(from, o.ID, fmt.Sprintf("the file is %d bytes; this node accepts files up to %d bytes", o.Size, s.cfg.MaxSize))
		s.log.Info("refused a file over the size limit", "from", from.Short(), "name", o.Name, "size", o.Size)
		return nil
	}
	t = &transfer{key: key, wake: make(chan struct{}, 1), rec: record{
		Wire: o.ID, Incoming: true, Peer: from, Name: o.Name, Mime: o.Mime, Size: o.Size, SHA256: o.SHA256,
		ChunkSize: o.ChunkSize, Chunks: o.Chunks, State: StateReceiving, Created: s.cfg.Now().UnixMilli(),
	}}
	s.label(&t.rec, o)
	if err := s.save(t); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("saving the offer of %q: %w", o.Name, err)
	}
	s.transfers[key] = t
	s.start(t)
	s.mu.Unlock()
	s.log.Info("file offered", "from", from.Short(), "name", o.Name, "size", o.Size, "transfer", hex.EncodeToString(key[:]), "group", t.rec.GroupName, "label", t.rec.Label)
	t.mu.Lock()
	s.changed(t, true)
	t.mu.Unlock()
	return nil
}

// refuse answers a transfer this node keeps no record of.
func (s *Service) refuse(to crypto.Address, wire [16]byte, why string) {
	data, _ := (&Ack{ID: wire, Status: AckRefused, Reason: why}).Marshal()
	if _, err := s.cfg.Messenger.SendMessage(to, &message.Message{Type: message.File, Data: data}, chat.SendOptions{}); err != nil {
		s.log.Warn("cannot send a refusal", "to", to.Short(), "err", err)
	}
}

// Acks gather: one goes when ackEvery new chunks are held, and otherwise
// at most every ackLinger.
const (
	ackEvery  = 8
	ackLinger = 20 * time.Millisecond
)

// commit is a chunk written to the partial file, waiting for the fsync
// and the record that make it held.
type commit struct {
	index uint32
	done  chan error
}

// onChunk writes a chunk and returns once it is durable.
func (s *Service) onChunk(t *transfer, c *Chunk) error {
	t.mu.Lock()
	r := &t.rec
	if r.final() {
		done := r.State == StateDone
		t.mu.Unlock()
		if done {
			s.sendAck(t) // our final ack may have been lost
		}
		return nil
	}
	if c.Index >= r.Chunks {
		t.mu.Unlock()
		return router.Reject("malformed", fmt.Errorf("chunk %d of %q is past the last chunk (%d)", c.Index, r.Name, r.Chunks-1))
	}
	off := int64(c.Index) * int64(r.ChunkSize)
	if want := min(int64(r.ChunkSize), int64(r.Size)-off); int64(len(c.Data)) != want {
		t.mu.Unlock()
		return router.Reject("malformed", fmt.Errorf("chunk %d of %q carries %d bytes, want %d", c.Index, r.Name, len(c.Data), want))
	}
	if r.Have.Has(c.Index) {
		t.mu.Unlock()
		poke(t.wake) // acknowledge again
		return nil
	}
	if t.file == nil {
		f, err := os.OpenFile(s.partialPath(t.key), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.mu.Unlock()
			return fmt.Errorf("opening the partial file of %q: %w", r.Name, err)
		}
		t.file = f
	}
	f := t.file
	t.mu.Unlock()
	if _, err := f.WriteAt(c.Data, off); err != nil {
		return fmt.Errorf("writing chunk %d of %q: %w", c.Index, t.rec.Name, err)
	}
	return s.commitChunk(t, c.Index)
}

// commitChunk makes a written chunk held: one goroutine at a time (the
// leader) fsyncs the partial file and saves the record for every chunk
// queued meanwhile, so concurrent deliveries share the disk writes.
func (s *Service) commitChunk(t *transfer, index uint32) error {
	c := &commit{index: index, done: make(chan error, 1)}
	t.mu.Lock()
	t.queue = append(t.queue, c)
	if t.leading {
		t.mu.Unlock()
		return <-c.done
	}
	t.leading = true
	for len(t.queue) > 0 {
		batch := t.queue
		t.queue = nil
		f := t.file
		t.mu.Unlock()
		err := errors.New("the transfer ended")
		if f != nil {
			err = f.Sync()
		}
		t.mu.Lock()
		if err == nil && t.rec.final() {
			err = nil // nothing to record: it ended meanwhile
		} else if err == nil {
			prev := t.rec.Have
			for _, c := range batch {
				t.rec.Have = t.rec.Have.Add(c.index)
			}
			if err = s.save(t); err != nil {
				t.rec.Have = prev
			}
		}
		for _, c := range batch {
			c.done <- err
		}
	}
	t.leading = false
	s.changed(t, false)
	t.mu.Unlock()
	poke(t.wake)
	return <-c.done
}

// ackLoop tells the sender of an incoming transfer what is held, checks
// the file once every chunk is in, and sends the final answer.
func (s *Service) ackLoop(t *transfer) {
	defer s.wg.Done()
	linger := time.NewTimer(time.Hour)
	defer linger.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.wake:
		}
		t.mu.Lock()
		complete := !t.rec.final() && t.rec.Have.Count() == uint64(t.rec.Chunks)
		fresh := t.rec.Have.Count() - min(t.acked, t.rec.Have.Count())
		wait := ackLinger - time.Since(t.ackedAt)
		t.mu.Unlock()
		if complete {
			s.finish(t)
		} else if fresh > 0 && fresh < ackEvery && wait > 0 {
			// Acks go at most every ackLinger unless ackEvery chunks
			// are new: one ack for several saves disk writes on both
			// sides.
			linger.Reset(wait)
			select {
			case <-s.ctx.Done():
				return
			case <-linger.C:
			}
		}
		s.sendAck(t)
		t.mu.Lock()
		final := t.rec.final()
		t.mu.Unlock()
		if final {
			return
		}
	}
}

// sendAck sends the sender t's state: progress, done, or refused.
func (s *Service) sendAck(t *transfer) {
	t.mu.Lock()
	r := &t.rec
	a := Ack{ID: r.Wire, Status: AckReceiving, Have: r.Have}
	switch r.State {
	case StateDone:
		a.Status, a.Have = AckComplete, nil
	case StateFailed, StateCancelled:
		a.Status, a.Reason = AckRefused, r.Refusal
		if a.Reason == "" {
			a.Reason = r.Error
		}
	}
	peer := r.Peer
	t.acked, t.ackedAt = r.Have.Count(), time.Now()
	t.mu.Unlock()
	data, err := a.Marshal()
	if err == nil {
		_, err = s.cfg.Messenger.SendMessage(peer, &message.Message{Type: message.File, Data: data}, chat.SendOptions{})
	}
	if err != nil && s.ctx.Err() == nil {
		s.log.Warn("cannot acknowledge file chunks; the sender will resend", "to", peer.Short(), "transfer", hex.EncodeToString(t.key[:]), "err", err)
	}
}

// finish checks the SHA-256 of a complete transfer and moves the file into
// place under a name no other file has.
func (s *Service) finish(t *transfer) {
	t.mu.Lock()
	if t.rec.final() || t.finishing {
		t.mu.Unlock()
		return
	}
	t.finishing = true
	defer func() {
		t.mu.Lock()
		t.finishing = false
		t.mu.Unlock()
	}()
	r := t.rec
	f := t.file
	t.file = nil
	t.mu.Unlock()
	if f != nil {
		f.Close()
	}
	part := s.partialPath(t.key)
	if r.Chunks == 0 {
		if err := os.WriteFile(part, nil, 0o600); err != nil {
			s.log.Error("cannot create an empty received file", "err", err)
			return
		}
	}
	sum, err := hashFile(part)
	if errors.Is(err, fs.ErrNotExist) && r.Path != "" {
		// A crash after the rename: the file is in place already.
		if sum, err = hashFile(r.Path); err == nil && sum == r.SHA256 {
			s.markDone(t, r.Path)
			return
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rec.final() {
		return
	}
	if err != nil {
		s.endIncoming(t, StateFailed, fmt.Sprintf("cannot read the received data: %v", err), "the receiver lost the data it had received: send the file again")
		return
	}
	if sum != r.SHA256 {
		s.log.Warn("received file does not match its SHA-256; discarded", "from", r.Peer.Short(), "name", r.Name)
		s.endIncoming(t, StateFailed, "the file arrived damaged (its SHA-256 does not match the offer) and was discarded: ask the sender to send it again",
			"the file arrived damaged (SHA-256 mismatch) and was discarded: send it again")
		return
	}
	dest := r.Path // reserved before a crash: an empty file
	if st, serr := os.Stat(dest); dest == "" || serr != nil || st.Size() != 0 {
		dest, err = s.reserve(r.Name)
	}
	if err == nil {
		t.rec.Path = dest
		if err = s.save(t); err == nil {
			if err = os.Rename(part, dest); err == nil {
				err = syncDir(s.cfg.Dir)
			}
		}
	}
	if err != nil {
		s.endIncoming(t, StateFailed, fmt.Sprintf("cannot put the received file in %s: %v", s.cfg.Dir, err), "the receiver could not store the file: send it again later")
		return
	}
	s.doneLocked(t)
}

func (s *Service) markDone(t *transfer, path string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rec.Path = path
	s.doneLocked(t)
}

// doneLocked marks an incoming transfer done; call with t.mu held.
func (s *Service) doneLocked(t *transfer) {
	t.rec.State, t.rec.Have = StateDone, nil
	if err := s.save(t); err != nil {
		s.log.Error("saving a received file's state failed", "err", err)
	}
	s.log.Info("file received", "from", t.rec.Peer.Short(), "name", t.rec.Name, "size", t.rec.Size, "path", t.rec.Path)
	s.changed(t, true)
}

// reserve picks the path a received file called name gets in the files
// directory ("name", else "name (2).ext", ...) and creates it empty so no
// other transfer takes it.
func (s *Service) reserve(name string) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	ext := filepath.Ext(name)
	base := strings.TrimSuffix(name, ext)
	if base == "" {
		base, ext = name, ""
	}
	for i := 1; i < 10000; i++ {
		n := name
		if i > 1 {
			n = fmt.Sprintf("%s (%d)%s", base, i, ext)
		}
		p := filepath.Join(s.cfg.Dir, n)
		if filepath.Dir(p) != filepath.Clean(s.cfg.Dir) {
			return "", fmt.Errorf("file name %q leaves the files directory", n)
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		f.Close()
		return p, nil
	}
	return "", fmt.Errorf("10000 files called %q already: clear out %s", name, s.cfg.Dir)
}

// endIncoming ends an incoming transfer: the partial data goes, the ack
// loop tells the sender (refusal; "" uses the local error). Call with t.mu
// held.
func (s *Service) endIncoming(t *transfer, state, why, refusal string) {
	t.rec.State, t.rec.Error, t.rec.Refusal, t.rec.Have = state, why, refusal, nil
	if t.file != nil {
		t.file.Close()
		t.file = nil
	}
	os.Remove(s.partialPath(t.key))
	if err := s.save(t); err != nil {
		s.log.Error("saving an ended transfer failed", "err", err)
	}
	s.changed(t, true)
	poke(t.wake)
}
