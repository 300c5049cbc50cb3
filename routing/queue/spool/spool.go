// Package spool is a bounded, durable, local store of opaque records: the
// place the queue keeps accepted events while Redis is unreachable.
//
// Records are appended to segment files in one directory. Every Append is
// one write and one fsync, whatever the number of records it carries, so a
// caller that groups concurrent writers pays one fsync per group. A record
// is framed as a little-endian uint32 length, a CRC-32C of the data, then
// the data; a torn or corrupt tail (a crash during a write that was never
// acknowledged) ends a segment's readable records.
//
// The directory holds a LOCK file taken with flock(2) for as long as the
// spool is open, so two processes never share one spool; the kernel drops
// the lock when a process dies, so there is no stale lock to clean up.
//
// Drain hands the records to a callback, oldest segment first, and deletes a
// segment only after the callback accepted all its records. A crash during a
// drain sends the records of the segment being drained again on the next
// drain (at least once).
package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// ErrFull is returned by Append when the records would take the spool past
// its size cap.
var ErrFull = errors.New("spool: full")

// ErrLocked is returned by Open when another process (or another Spool of
// this process) holds the directory.
var ErrLocked = errors.New("spool: directory in use by another process")

// Options configure a Spool. Zero values take the defaults named on each
// field.
type Options struct {
	// MaxBytes caps the bytes of all segments on disk (default 256 MiB).
	MaxBytes int64
	// SegmentBytes is the size past which the active segment is closed and
	// a new one started (default 16 MiB).
	SegmentBytes int64
	// DrainChunk is the most records one Drain callback receives (default
	// 256).
	DrainChunk int
}

const (
	headerLen  = 8
	segPrefix  = "seg-"
	segSuffix  = ".log"
	lockName   = "LOCK"
	maxRecLen  = 64 << 20
	defaultCap = 256 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Spool is an open spool directory. Its methods are safe for concurrent
// use.
type Spool struct {
	dir  string
	opts Options
	lock *os.File

	mu         sync.Mutex
	active     *os.File // nil until the first Append after Open or a seal
	activeSeq  uint64
	activeSize int64
	nextSeq    uint64
	sealed     []uint64 // segments not being written, oldest first
	size       int64    // bytes of all segments
	closed     bool

	drainMu sync.Mutex // one Drain at a time
}

// Open opens (creating it if needed) the spool in dir and locks it.
// Segments left by an earlier process are kept, to be drained.
func Open(dir string, opts Options) (*Spool, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = defaultCap
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 16 << 20
	}
	opts.SegmentBytes = min(opts.SegmentBytes, opts.MaxBytes)
	if opts.DrainChunk <= 0 {
		opts.DrainChunk = 256
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("spool: lock %s: %w", dir, err)
	}
	s := &Spool{dir: dir, opts: opts, lock: lock}
	ents, err := os.ReadDir(dir)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	for _, e := range ents {
		seq, ok := segSeq(e.Name())
		if !ok {
			continue
		}
		info, err := e.Info()
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("spool: %w", err)
		}
		if info.Size() == 0 {
			_ = os.Remove(filepath.Join(dir, e.Name()))
			continue
		}
		s.sealed = append(s.sealed, seq)
		s.size += info.Size()
		s.nextSeq = max(s.nextSeq, seq+1)
	}
	sort.Slice(s.sealed, func(i, j int) bool { return s.sealed[i] < s.sealed[j] })
	return s, nil
}

func segName(seq uint64) string { return fmt.Sprintf("%s%016d%s", segPrefix, seq, segSuffix) }

func segSeq(name string) (uint64, bool) {
	if !strings.HasPrefix(name, segPrefix) || !strings.HasSuffix(name, segSuffix) {
		return 0, false
	}
	seq, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, segPrefix), segSuffix), 10, 64)
	return seq, err == nil
}

// Append stores recs durably: it returns nil only once they are written and
// fsync'd. It returns ErrFull, storing nothing, when they do not fit under
// MaxBytes.
func (s *Spool) Append(recs ...[]byte) error {
	n := 0
	for _, r := range recs {
		if len(r) > maxRecLen {
			return fmt.Errorf("spool: record of %d bytes is too large", len(r))
		}
		n += headerLen + len(r)
	}
	if n == 0 {
		return nil
	}
	buf := make([]byte, 0, n)
	for _, r := range recs {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(r)))
		buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(r, castagnoli))
		buf = append(buf, r...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("spool: closed")
	}
	if s.size+int64(n) > s.opts.MaxBytes {
		return ErrFull
	}
	if s.active != nil && s.activeSize >= s.opts.SegmentBytes {
		if err := s.sealLocked(); err != nil {
			return err
		}
	}
	if s.active == nil {
		if err := s.createLocked(); err != nil {
			return err
		}
	}
	w, err := s.active.Write(buf)
	s.activeSize += int64(w)
	s.size += int64(w)
	if err == nil {
		err = s.active.Sync()
	}
	if err != nil {
		// The segment may now end in a torn record: seal it so nothing is
		// written after it, and report the failure (nothing acknowledged).
		_ = s.sealLocked()
		return fmt.Errorf("spool: append: %w", err)
	}
	return nil
}

func (s *Spool) createLocked() error {
	seq := s.nextSeq
	f, err := os.OpenFile(filepath.Join(s.dir, segName(seq)), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: create segment: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		_ = os.Remove(f.Name())
		return err
	}
	s.nextSeq++
	s.active, s.activeSeq, s.activeSize = f, seq, 0
	return nil
}

func (s *Spool) sealLocked() error {
	if s.active == nil {
		return nil
	}
	err := s.active.Close()
	if s.activeSize > 0 {
		s.sealed = append(s.sealed, s.activeSeq)
	} else {
		_ = os.Remove(filepath.Join(s.dir, segName(s.activeSeq)))
	}
	s.active = nil
	if err != nil {
		return fmt.Errorf("spool: close segment: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: sync directory: %w", err)
	}
	return nil
}

// Bytes is the size of every segment on disk, drained or not yet.
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// Empty reports whether there is nothing to drain.
func (s *Spool) Empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size == 0
}

// Drain passes every record stored before the call to fn, in order, at most
// DrainChunk at a time, and deletes each segment once fn accepted all its
// records. It stops at the first error of fn, keeping the segment being
// drained (its records go to fn again on the next Drain). It returns how many
// records fn accepted. Append may be called while a Drain runs, from fn too;
// what it stores is drained by the next Drain.
func (s *Spool) Drain(fn func(recs [][]byte) error) (int, error) {
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	s.mu.Lock()
	if err := s.sealLocked(); err != nil {
		s.mu.Unlock()
		return 0, err
	}
	segs := append([]uint64(nil), s.sealed...)
	s.mu.Unlock()

	total := 0
	for _, seq := range segs {
		path := filepath.Join(s.dir, segName(seq))
		data, err := os.ReadFile(path)
		if err != nil {
			return total, fmt.Errorf("spool: read segment: %w", err)
		}
		recs := parse(data)
		for len(recs) > 0 {
			chunk := recs[:min(len(recs), s.opts.DrainChunk)]
			if err := fn(chunk); err != nil {
				return total, err
			}
			total += len(chunk)
			recs = recs[len(chunk):]
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return total, fmt.Errorf("spool: delete drained segment: %w", err)
		}
		s.mu.Lock()
		s.size -= int64(len(data))
		for i, q := range s.sealed {
			if q == seq {
				s.sealed = append(s.sealed[:i], s.sealed[i+1:]...)
				break
			}
		}
		s.mu.Unlock()
	}
	if total > 0 {
		_ = syncDir(s.dir)
	}
	return total, nil
}

// parse reads the records of a segment, stopping at a torn or corrupt tail.
func parse(data []byte) [][]byte {
	var out [][]byte
	for len(data) >= headerLen {
		n := binary.LittleEndian.Uint32(data)
		sum := binary.LittleEndian.Uint32(data[4:])
		if n > maxRecLen || int(n) > len(data)-headerLen {
			break
		}
		rec := data[headerLen : headerLen+int(n)]
		if crc32.Checksum(rec, castagnoli) != sum {
			break
		}
		out = append(out, rec)
		data = data[headerLen+int(n):]
	}
	return out
}

// Close closes the active segment and releases the lock. Stored records
// stay on disk for the next Open.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.sealLocked()
	if s.lock != nil {
		_ = syscall.Flock(int(s.lock.Fd()), syscall.LOCK_UN)
		err = errors.Join(err, s.lock.Close())
	}
	return err
}

var _ io.Closer = (*Spool)(nil)
