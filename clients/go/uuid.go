package sidecar

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync"
	"time"
)

// idRandom buffers random bytes for message ids: one read of the system's random source serves 409 ids, where a
// read per id was a system call per event.
var idRandom struct {
	sync.Mutex
	buf [4096]byte
	off int
}

// idRandomBytes is how many of an id's 16 bytes are random (the rest is the time, the version and the variant
// overwrite 6 bits of them).
const idRandomBytes = 10

func init() { idRandom.off = len(idRandom.buf) }

// newMessageID returns a version 7 UUID (RFC 9562: 48 bits of Unix milliseconds, then 74 random bits) in its
// canonical text form, as the sidecar makes its own. The client assigns message ids itself, before the first
// attempt, so that every retry of a call carries the same id and Segment de-duplicates.
func newMessageID() string {
	var u [16]byte
	idRandom.Lock()
	if idRandom.off+idRandomBytes > len(idRandom.buf) {
		// crypto/rand.Read never returns an error on the platforms Go supports (it panics instead).
		_, _ = rand.Read(idRandom.buf[:])
		idRandom.off = 0
	}
	copy(u[6:], idRandom.buf[idRandom.off:idRandom.off+idRandomBytes])
	idRandom.off += idRandomBytes
	idRandom.Unlock()
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(time.Now().UnixMilli()))
	copy(u[0:6], ms[2:8])
	u[6] = (u[6] & 0x0f) | 0x70 // version 7
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 9562 variant
	var out [36]byte
	hex.Encode(out[0:8], u[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], u[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], u[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], u[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], u[10:16])
	return string(out[:])
}
